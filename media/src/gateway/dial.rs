//! Calling out: phones a moderator (or the organisation's API) calls into a meeting, through the SIP trunk
//! the operator configured (an outbound proxy, with digest credentials when it asks). Rooms ask through a
//! [`Dialer`]; the gateway places each call on a task of its own, tells the room how it goes (calling,
//! ringing, answered, busy…) and, once the phone answers, runs it as a [`Call`] that enters the room as
//! invited: no lobby, password or PIN, but removals and ceilings hold.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use convene_signal::DialOutState;
use rsipstack::{
    dialog::{authenticate::Credential, dialog::DialogState, invitation::InviteOption},
    sip::{self as sip, StatusCode, Transport},
    transport::SipAddr,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{CallFacts, PhoneAdmission, PhoneDirectory, Shared, call::Call};
use crate::{
    focus::{DialOutChange, Identity, PhoneLeg, RoomPolicy, TokenFacts, phone_name, phone_user_id},
    phone::sdp::{self, Offer},
    rooms::RoomKey,
};

/// Requests waiting for the gateway; past this, rooms are told the line is busy.
const WAITING_REQUESTS: usize = 64;
/// A phone that has not answered after this long is given up (most networks stop ringing at 60 s).
const RING_TIMEOUT: Duration = Duration::from_secs(60);

/// The operator's SIP trunk: where calls out go.
#[derive(Clone)]
pub struct Trunk {
    host: String,
    port: u16,
    transport: Transport,
    credential: Option<(String, String)>,
}

impl std::fmt::Debug for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log.
        let user = self.credential.as_ref().map(|(user, _)| user);
        f.debug_struct("Trunk").field("host", &self.host).field("port", &self.port).field("user", &user).finish()
    }
}

impl std::fmt::Display for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = if self.transport == Transport::Tcp { "tcp" } else { "udp" };
        write!(f, "sip:{}:{};transport={transport}", self.uri_host(), self.port)
    }
}

impl Trunk {
    /// Reads `sip:host[:port][;transport=udp|tcp]` (port 5060 and UDP unless said), with digest
    /// `credential` (user name and password) for trunks that challenge.
    pub fn parse(uri: &str, credential: Option<(String, String)>) -> Result<Self, String> {
        let invalid = || format!("`{uri}` is not a SIP trunk address like sip:trunk.example.com:5060;transport=udp");
        let rest = uri.trim().strip_prefix("sip:").ok_or_else(invalid)?;
        let mut parts = rest.split(';');
        let address = parts.next().unwrap_or_default();
        let mut transport = Transport::Udp;
        for parameter in parts {
            match parameter.to_ascii_lowercase().as_str() {
                "transport=udp" => transport = Transport::Udp,
                "transport=tcp" => transport = Transport::Tcp,
                "lr" => {}
                _ => return Err(format!("{}: only transport=udp or transport=tcp is understood", invalid())),
            }
        }
        let (host, port) = match address.rsplit_once(':') {
            // An IPv6 address in brackets has colons of its own.
            Some((host, port)) if !port.contains(']') => (host, port.parse().map_err(|_| invalid())?),
            _ => (address, 5060),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
        if host.is_empty() || host.contains('@') || !host.chars().all(plain) || port == 0 {
            return Err(invalid());
        }
        Ok(Self { host: host.to_owned(), port, transport, credential })
    }

    /// The host as it goes in a SIP address (an IPv6 address in brackets).
    fn uri_host(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }

    /// The request URI that asks the trunk for `number`.
    fn callee(&self, number: &str) -> Result<sip::Uri, String> {
        let host = self.uri_host();
        let transport = if self.transport == Transport::Tcp { ";transport=tcp" } else { "" };
        sip::Uri::try_from(format!("sip:{number}@{host}:{}{transport}", self.port).as_str())
            .map_err(|error| format!("the trunk's address does not make a SIP address: {error}"))
    }

    /// Where the trunk is now (a name is looked up for each call, so a moved trunk is followed).
    async fn destination(&self) -> Result<SipAddr, String> {
        let mut found = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|error| format!("the trunk {} cannot be found: {error}", self.host))?;
        let address: SocketAddr = found.next().ok_or_else(|| format!("the trunk {} has no address", self.host))?;
        Ok(SipAddr { r#type: Some(self.transport), addr: address.into() })
    }
}

/// What a room asks the gateway to do: call `number` into `room`.
#[derive(Debug)]
pub struct DialRequest {
    /// The call's id, as the room's moderators know it.
    pub call: String,
    /// The room.
    pub room: RoomKey,
    /// Its settings and allowance, for the callee's connection.
    pub policy: RoomPolicy,
    /// The number, in international form.
    pub number: String,
    /// Who asked, in words.
    pub by: String,
    /// Cancelled when a moderator stops the call before it is answered.
    cancel: CancellationToken,
}

/// Rooms' way to the gateway's trunk.
#[derive(Debug, Clone)]
pub struct Dialer {
    requests: mpsc::Sender<DialRequest>,
    /// Calls not answered yet, to cancel by id.
    ringing: Ringing,
    /// Calls answered, to press keys on by id.
    keypads: Keypads,
}

/// The gateway's end of a [`Dialer`].
#[derive(Debug)]
pub struct DialRequests {
    receiver: mpsc::Receiver<DialRequest>,
    /// Shared with the dialer: the gateway forgets calls once they are answered or over.
    pub(super) ringing: Ringing,
    /// Shared with the dialer: the gateway adds calls as they are answered and forgets them when over.
    pub(super) keypads: Keypads,
}

/// Calls not answered yet, by id, with what cancels them.
pub(super) type Ringing = Arc<Mutex<HashMap<String, CancellationToken>>>;

/// Calls answered, by id, with the way to their keypads (keys to press, a request at a time).
pub(super) type Keypads = Arc<Mutex<HashMap<String, mpsc::Sender<String>>>>;

/// Key requests waiting for one call: more are dropped (a moderator pressing faster than the keys go).
const WAITING_TONES: usize = 4;

/// A dialer for the rooms and its requests for the gateway.
pub fn dialer() -> (Dialer, DialRequests) {
    let (requests, receiver) = mpsc::channel(WAITING_REQUESTS);
    let (ringing, keypads) = (Ringing::default(), Keypads::default());
    let dialer = Dialer { requests, ringing: Arc::clone(&ringing), keypads: Arc::clone(&keypads) };
    (dialer, DialRequests { receiver, ringing, keypads })
}

impl Dialer {
    /// Asks the gateway to call `number` into `room` for `by` under the id `call`; an error in words when
    /// it cannot take the request now.
    pub fn place(
        &self,
        call: String,
        room: RoomKey,
        policy: RoomPolicy,
        number: String,
        by: String,
    ) -> Result<(), String> {
        let cancel = CancellationToken::new();
        // Known before the gateway can see the request: a call that fails at once forgets an entry that is
        // already there, rather than leaving one behind for good.
        if let Ok(mut ringing) = self.ringing.lock() {
            ringing.insert(call.clone(), cancel.clone());
        }
        let request = DialRequest { call, room, policy, number, by, cancel };
        if let Err(error) = self.requests.try_send(request) {
            let words = match &error {
                mpsc::error::TrySendError::Full(_) => "the phone line is busy; try again in a moment",
                mpsc::error::TrySendError::Closed(_) => "the phone line is down",
            };
            if let Ok(mut ringing) = self.ringing.lock() {
                ringing.remove(&error.into_inner().call);
            }
            return Err(words.to_owned());
        }
        Ok(())
    }

    /// Stops calling: the phone stops ringing (a call already answered goes on).
    pub fn cancel(&self, call: &str) {
        if let Some(cancel) = self.ringing.lock().ok().and_then(|ringing| ringing.get(call).cloned()) {
            cancel.cancel();
        }
    }

    /// Presses `tones` (checked keys) on the answered call `call`; nothing if it is over.
    pub fn send_tones(&self, call: &str, tones: String) {
        if let Some(keypad) = self.keypads.lock().ok().and_then(|keypads| keypads.get(call).cloned()) {
            let _ = keypad.try_send(tones);
        }
    }
}

impl DialRequests {
    /// The next request; `None` once every dialer is gone.
    pub(super) async fn next(&mut self) -> Option<DialRequest> {
        self.receiver.recv().await
    }
}

/// How a call that was not answered ended, as moderators see it.
fn unanswered(status: &StatusCode) -> (DialOutState, Option<String>) {
    let code = u16::from(status.clone());
    let said = |words: &str| Some(words.to_owned());
    match code {
        486 | 600 => (DialOutState::Busy, None),
        603 => (DialOutState::Declined, None),
        408 | 480 | 487 => (DialOutState::NoAnswer, None),
        401 | 407 => (DialOutState::Failed, said("the phone line refused the gateway's credentials")),
        404 | 484 | 604 => (DialOutState::Failed, said("the number does not exist")),
        403 => (DialOutState::Failed, said("the phone line refused to call this number")),
        503 => (DialOutState::Failed, said("the phone line is not available now")),
        _ => (DialOutState::Failed, Some(format!("the phone line answered {code}"))),
    }
}

impl<D: PhoneDirectory> Shared<D> {
    /// Places one call and, once answered, runs it to its end; every change is told to the room.
    pub(super) async fn dial(self: Arc<Self>, trunk: Trunk, request: DialRequest) {
        let report = |state: DialOutState, reason: Option<String>| {
            let change = DialOutChange {
                call: request.call.clone(),
                number: request.number.clone(),
                state,
                by: request.by.clone(),
                reason,
            };
            let rooms = self.rooms.clone();
            let room = request.room.clone();
            async move { rooms.dial_out_changed(&room, change).await }
        };
        if self.calls.load(Ordering::Relaxed) >= self.max_calls || self.shutdown.is_cancelled() {
            return report(DialOutState::Failed, Some("the phone gateway is at capacity".to_owned())).await;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (state, reason) = match self.clone().place(&trunk, &request, &report).await {
            Ok(()) => (DialOutState::Ended, None),
            Err((state, reason)) => (state, reason),
        };
        self.calls.fetch_sub(1, Ordering::Relaxed);
        self.forget_ringing(&request.call);
        report(state, reason).await;
    }

    /// Rings the phone; runs the call if it answers. An unanswered or failed call's final state.
    async fn place<F: Future<Output = ()>>(
        self: Arc<Self>,
        trunk: &Trunk,
        request: &DialRequest,
        report: &impl Fn(DialOutState, Option<String>) -> F,
    ) -> Result<(), (DialOutState, Option<String>)> {
        let failed = |words: String| (DialOutState::Failed, Some(words));
        // The room checked its own memory; the records also know removals from before it last started.
        self.directory
            .may_call(&request.room, &request.number)
            .await
            .map_err(|refusal| failed(refusal.words().to_owned()))?;
        let destination = trunk.destination().await.map_err(failed)?;
        let callee = trunk.callee(&request.number).map_err(failed)?;
        let socket = self
            .rtp_socket()
            .await
            .map_err(|error| failed(format!("the gateway has no port for the call's audio: {error}")))?;
        let port = socket.local_addr().map_or(0, |address| address.port());
        let caller_id = self.directory.caller_id(&request.room.0).await;
        let presented = caller_id.clone().unwrap_or_else(|| "anonymous".to_owned());
        let local = |user: &str, host: String| sip::Uri::try_from(format!("sip:{user}@{host}").as_str()).ok();
        let here = SocketAddr::new(self.advertised_ip, self.port).to_string();
        let (Some(caller), Some(contact)) = (local(&presented, trunk.uri_host()), local("convene", here)) else {
            return Err(failed("the organisation's number does not make a SIP address".to_owned()));
        };
        let session = u64::from(super::call::random_u32());
        let option = InviteOption {
            caller,
            callee,
            destination: Some(destination),
            content_type: Some("application/sdp".to_owned()),
            offer: Some(sdp::offer(self.advertised_ip, port, session).into_bytes()),
            contact,
            credential: trunk.credential.clone().map(|(username, password)| Credential {
                username,
                password,
                realm: None,
                auth_username: None,
            }),
            ..Default::default()
        };
        let (states, mut state_receiver) = self.dialogs.new_dialog_state_channel();
        let (dialog, mut invited) = self
            .dialogs
            .do_invite_async(option, states)
            .map_err(|error| failed(format!("the call could not be placed: {error}")))?;
        let ring_timeout = tokio::time::sleep(RING_TIMEOUT);
        tokio::pin!(ring_timeout);
        let mut rang = false;
        // Asked to stop (by a moderator, the ring timeout or shutdown): the CANCEL went, the answer is awaited.
        let mut cancelling = false;
        let answer = loop {
            tokio::select! {
                finished = &mut invited => match finished {
                    Ok(Ok((_, Some(response)))) if response.status_code.kind() == sip::StatusCodeKind::Successful => {
                        break response;
                    }
                    Ok(Ok((_, Some(response)))) => return Err(unanswered(&response.status_code)),
                    Ok(Ok((_, None))) => return Err((DialOutState::NoAnswer, None)),
                    Ok(Err(error)) => return Err(failed(format!("the phone line cannot be reached: {error}"))),
                    Err(_) => return Err(failed("the call was lost".to_owned())),
                },
                state = state_receiver.recv() => {
                    if let Some(DialogState::Early(..)) = state
                        && !std::mem::replace(&mut rang, true)
                    {
                        report(DialOutState::Ringing, None).await;
                    }
                }
                () = request.cancel.cancelled(), if !cancelling => {
                    cancelling = true;
                    let _ = dialog.cancel().await;
                }
                () = &mut ring_timeout, if !cancelling => {
                    cancelling = true;
                    let _ = dialog.cancel().await;
                }
                () = self.shutdown.cancelled(), if !cancelling => {
                    cancelling = true;
                    let _ = dialog.cancel().await;
                }
            }
        };
        self.forget_ringing(&request.call);
        if cancelling {
            // Answered as the CANCEL crossed it: the stack ends that call with a BYE.
            self.dialogs.remove_dialog(&dialog.id());
            return Err((DialOutState::NoAnswer, None));
        }
        let offer = match Offer::parse(&String::from_utf8_lossy(&answer.body)) {
            Ok(offer) => offer,
            Err(error) => {
                let _ = dialog.hangup().await;
                self.dialogs.remove_dialog(&dialog.id());
                return Err(failed(format!("the phone answered without usable audio: {error}")));
            }
        };
        report(DialOutState::Answered, None).await;
        let (tenant, room) = &request.room;
        let identity = Identity {
            user_id: Some(phone_user_id(&request.number)),
            name: phone_name(Some(&request.number)),
            invited: true,
            phone: Some(PhoneLeg::DialOut),
            // The number is who a removal keeps out; the digest only tells this call from others.
            token: TokenFacts { digest: format!("dial-out:{}", request.call), ..TokenFacts::default() },
            ..Identity::default()
        };
        let admission =
            PhoneAdmission { room: (tenant.clone(), room.clone()), policy: request.policy.clone(), identity };
        let facts = CallFacts { number: presented, caller: Some(request.number.clone()) };
        let (keypad, keys) = mpsc::channel(WAITING_TONES);
        self.keypads(|keypads| keypads.insert(request.call.clone(), keypad));
        let call = Call::placed(self.clone(), dialog, state_receiver, (socket, offer), facts, admission);
        call.with_keys(keys).run().await;
        self.keypads(|keypads| keypads.remove(&request.call));
        Ok(())
    }

    /// Changes the answered calls' keypads, when calling out is on.
    fn keypads<T>(&self, change: impl FnOnce(&mut HashMap<String, mpsc::Sender<String>>) -> T) {
        if let Some(keypads) = &self.keypads
            && let Ok(mut keypads) = keypads.lock()
        {
            change(&mut keypads);
        }
    }

    fn forget_ringing(&self, call: &str) {
        if let Some(ringing) = &self.ringing
            && let Ok(mut ringing) = ringing.lock()
        {
            ringing.remove(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_addresses_are_read_with_their_defaults_and_junk_is_refused() {
        let trunk = Trunk::parse("sip:pbx.example.com", None).expect("a name");
        assert_eq!((trunk.host.as_str(), trunk.port, trunk.transport), ("pbx.example.com", 5060, Transport::Udp));
        let trunk = Trunk::parse("sip:127.0.0.1:5080;transport=TCP;lr", None).expect("an address");
        assert_eq!((trunk.host.as_str(), trunk.port, trunk.transport), ("127.0.0.1", 5080, Transport::Tcp));
        let trunk = Trunk::parse("sip:[::1]:5070", Some(("u".into(), "secret".into()))).expect("IPv6");
        assert_eq!((trunk.host.as_str(), trunk.port), ("::1", 5070));
        assert!(!format!("{trunk:?}").contains("secret"), "the password stays out of logs");
        assert_eq!(trunk.callee("+15551234567").expect("a URI").to_string(), "sip:+15551234567@[::1]:5070");
        for junk in
            ["pbx.example.com", "sip:", "sip:a@b", "sip:host:port", "sip:host:0", "sip:h;transport=tls", "sip:h o"]
        {
            assert!(Trunk::parse(junk, None).is_err(), "{junk}");
        }
    }

    #[test]
    fn unanswered_calls_say_why_in_moderators_words() {
        assert_eq!(unanswered(&StatusCode::BusyHere).0, DialOutState::Busy);
        assert_eq!(unanswered(&StatusCode::Decline).0, DialOutState::Declined);
        assert_eq!(unanswered(&StatusCode::RequestTerminated).0, DialOutState::NoAnswer);
        let (state, reason) = unanswered(&StatusCode::NotFound);
        assert_eq!((state, reason.as_deref()), (DialOutState::Failed, Some("the number does not exist")));
    }
}
