// Convene's end-to-end encryption of media frames. Browsers run encoded transforms in a worker, so this is
// the one piece of the meeting client in JavaScript. The page (Rust) agrees the keys and posts them here;
// this file only applies them.
//
// Frame layout (as Jitsi's JFrame): the first bytes stay clear so the media node can still tell keyframes
// and layers apart (10 of a video keyframe, 3 of other video frames, 1 of audio), then the AES-128-GCM
// ciphertext of the rest with those bytes as additional data, then the 12-byte IV, the key index and a
// version byte (0xE2) that marks the frame as encrypted.
"use strict";

const IV_LENGTH = 12;
const VERSION = 0xe2;
// IV, key index, version.
const TRAILER = IV_LENGTH + 2;
// participant id (string) -> { current: index, byIndex: Map(index -> CryptoKey) }
const keyring = new Map();
const own = "me";

function entry(participant) {
  let found = keyring.get(participant);
  if (!found) {
    found = { current: null, byIndex: new Map() };
    keyring.set(participant, found);
  }
  return found;
}

async function installKey(message) {
  const key = await crypto.subtle.importKey("raw", message.key, "AES-GCM", false, ["encrypt", "decrypt"]);
  const found = entry(message.participant);
  found.byIndex.set(message.index, key);
  found.current = message.index;
  // Keep a few older keys for frames still in flight after a ratchet or a rotation.
  for (const index of [...found.byIndex.keys()]) {
    if (((message.index - index + 256) % 256) > 4) found.byIndex.delete(index);
  }
}

function clearBytes(frame) {
  if (frame.type === undefined) return 1; // audio
  return frame.type === "key" ? 10 : 3;
}

function encryptor(participant) {
  return async function (frame, controller) {
    const keys = keyring.get(participant);
    const key = keys && keys.byIndex.get(keys.current);
    // Never send a frame in the clear: without a key it is dropped.
    if (!key) return;
    const data = new Uint8Array(frame.data);
    const clear = Math.min(clearBytes(frame), data.length);
    const iv = crypto.getRandomValues(new Uint8Array(IV_LENGTH));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: data.subarray(0, clear) }, key, data.subarray(clear)),
    );
    const out = new Uint8Array(clear + sealed.length + TRAILER);
    out.set(data.subarray(0, clear), 0);
    out.set(sealed, clear);
    out.set(iv, clear + sealed.length);
    out[out.length - 2] = keys.current;
    out[out.length - 1] = VERSION;
    frame.data = out.buffer;
    controller.enqueue(frame);
  };
}

function decryptor(participant) {
  return async function (frame, controller) {
    const data = new Uint8Array(frame.data);
    const clear = clearBytes(frame);
    if (data.length < clear + 16 + TRAILER || data[data.length - 1] !== VERSION) return;
    const keys = keyring.get(participant);
    const key = keys && keys.byIndex.get(data[data.length - 2]);
    if (!key) return;
    const iv = data.subarray(data.length - TRAILER, data.length - 2);
    try {
      const opened = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv, additionalData: data.subarray(0, clear) },
          key,
          data.subarray(clear, data.length - TRAILER),
        ),
      );
      const out = new Uint8Array(clear + opened.length);
      out.set(data.subarray(0, clear), 0);
      out.set(opened, clear);
      frame.data = out.buffer;
      controller.enqueue(frame);
    } catch (_) {
      // Not ours to open (a key not yet here, or tampering): the decoder asks for a keyframe.
    }
  };
}

function pipe(readable, writable, options) {
  const transform = options.operation === "encrypt" ? encryptor(own) : decryptor(String(options.participant));
  readable.pipeThrough(new TransformStream({ transform })).pipeTo(writable).catch(() => {});
}

// RTCRtpScriptTransform (Safari, Firefox, Chromium from 2025).
self.onrtctransform = (event) => {
  const transformer = event.transformer;
  pipe(transformer.readable, transformer.writable, transformer.options);
};

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "key") {
    installKey(message);
  } else if (message.type === "streams") {
    // Chromium's older encoded streams, handed over by the page.
    pipe(message.readable, message.writable, message);
  }
};
