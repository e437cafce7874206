// Convene's iframe API: put a meeting inside your own page and talk to it with commands and events, as with
// Jitsi's external API. Include it from your meet host (<script src="https://meet.example.com/external_api.js">)
// and create `new ConveneMeetExternalAPI(meetHost, { roomName, jwt, parentNode, prejoin })`.
//
// Messages cross the frame with postMessage. The meeting page answers only the origin that embedded it (sent
// in the frame's URL fragment, never to the server), and this script accepts only messages from the frame's
// own origin and window.
(function () {
  "use strict";

  var COMMANDS = ["toggleAudio", "toggleVideo", "setAudioMuted", "setVideoMuted", "hangup", "displayName", "sendTones"];

  function ConveneMeetExternalAPI(meetHost, options) {
    if (!options || !options.roomName || !options.jwt) {
      throw new Error("ConveneMeetExternalAPI needs { roomName, jwt }");
    }
    var base = /^https?:\/\//.test(meetHost) ? meetHost : "https://" + meetHost;
    var url = new URL(encodeURIComponent(options.roomName), base.replace(/\/?$/, "/"));
    url.searchParams.set("jwt", options.jwt);
    url.hash = "convene-parent=" + encodeURIComponent(window.location.origin);
    // { prejoin: false } joins at once, with the devices' defaults, without the pre-join screen.
    if (options.prejoin === false) url.hash += "&convene-join=now";
    this._origin = url.origin;
    this._listeners = {};
    this.iframe = document.createElement("iframe");
    this.iframe.src = url.toString();
    this.iframe.allow = "camera; microphone; display-capture; autoplay; fullscreen";
    this.iframe.style.border = "0";
    this.iframe.style.width = options.width || "100%";
    this.iframe.style.height = options.height || "100%";
    this.iframe.title = "Convene meeting " + options.roomName;
    (options.parentNode || document.body).appendChild(this.iframe);
    this._onMessage = this._receive.bind(this);
    window.addEventListener("message", this._onMessage);
  }

  ConveneMeetExternalAPI.prototype._receive = function (event) {
    if (event.origin !== this._origin || event.source !== this.iframe.contentWindow) return;
    var message = event.data;
    if (!message || message.type !== "convene-event") return;
    (this._listeners[message.name] || []).slice().forEach(function (listener) {
      listener(message.data || {});
    });
  };

  // Commands: toggleAudio, toggleVideo, setAudioMuted(bool), setVideoMuted(bool), hangup, displayName(text),
  // sendTones({ tones: "1234#", call }) (keys on a phone the meeting called; moderators only).
  ConveneMeetExternalAPI.prototype.executeCommand = function (name, argument) {
    if (COMMANDS.indexOf(name) < 0) throw new Error("unknown command " + name + "; known: " + COMMANDS.join(", "));
    this.iframe.contentWindow.postMessage({ type: "convene-command", name: name, argument: argument }, this._origin);
  };

  // Events: videoConferenceJoined {id}, videoConferenceLeft {}, participantJoined {id, displayName},
  // participantLeft {id}, audioMuteStatusChanged {muted}.
  ConveneMeetExternalAPI.prototype.addListener = function (name, listener) {
    (this._listeners[name] = this._listeners[name] || []).push(listener);
  };
  ConveneMeetExternalAPI.prototype.on = ConveneMeetExternalAPI.prototype.addListener;

  ConveneMeetExternalAPI.prototype.removeListener = function (name, listener) {
    this._listeners[name] = (this._listeners[name] || []).filter(function (known) {
      return known !== listener;
    });
  };
  ConveneMeetExternalAPI.prototype.off = ConveneMeetExternalAPI.prototype.removeListener;

  // Hangs up and removes the frame.
  ConveneMeetExternalAPI.prototype.dispose = function () {
    window.removeEventListener("message", this._onMessage);
    if (this.iframe.parentNode) this.iframe.parentNode.removeChild(this.iframe);
  };

  window.ConveneMeetExternalAPI = ConveneMeetExternalAPI;
})();
