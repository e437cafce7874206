//! Passing a call to the node its meeting runs on: the gateway that took it (the trunk's choice) calls that
//! node's gateway with the control plane's ticket, offering the caller's own codec, and from then on only
//! copies datagrams both ways and hangs up either side when the other does. The meeting's node holds the
//! conversation (password, prompts, `*6`) as for its own callers; keys sent as events ride in the audio,
//! keys sent as INFO are passed on.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rsipstack::{
    dialog::{
        dialog::{DialogState, DialogStateReceiver},
        invitation::InviteOption,
        invite_dialog::InviteDialog,
    },
    sip::{self as sip, Header, HeadersExt, StatusCode, Transport},
    transport::SipAddr,
};
use tokio::net::UdpSocket;

use super::{CallFacts, PhoneDirectory, RELAY_HEADER, ROOM_PASSWORD_HEADER, Relay, Shared};
use crate::phone::sdp::Offer;

/// How long the meeting's node may take to answer: past this the caller is told to try later.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The call's leg to the meeting's node.
pub(super) struct RelayLeg {
    dialog: InviteDialog,
    states: DialogStateReceiver,
    socket: UdpSocket,
    /// Where the meeting's node takes the caller's audio (`None` while it holds the call).
    destination: Option<SocketAddr>,
}

/// What happened on the leg.
pub(super) enum RelayEvent {
    /// A datagram's length and sender (read into the buffer given), or why none was read.
    Datagram(std::io::Result<(usize, SocketAddr)>),
    /// The dialog changed; `None` once it is gone.
    Dialog(Option<Box<DialogState>>),
}

impl<D: PhoneDirectory> Shared<D> {
    /// Calls the meeting's gateway for the caller of `facts`, whose trunk offered `offer`, with `password`
    /// for the meeting if one was given; the leg once that gateway has answered in the caller's codec.
    pub(super) async fn open_relay(
        self: &Arc<Self>,
        relay: &Relay,
        facts: &CallFacts,
        (offer, password): (&Offer, Option<&str>),
    ) -> Result<RelayLeg, String> {
        let socket = self.rtp_socket().await.map_err(|error| format!("no port for the relayed audio: {error}"))?;
        let port = socket.local_addr().map_or(0, |address| address.port());
        let here = SocketAddr::new(self.advertised_ip, self.port);
        let uri = |user: &str, host: SocketAddr| sip::Uri::try_from(format!("sip:{user}@{host}").as_str()).ok();
        let caller = facts.caller.as_deref().and_then(|caller| uri(caller, here));
        let (Some(caller), Some(callee), Some(contact)) =
            (caller.or_else(|| uri("anonymous", here)), uri(&facts.number, relay.gateway), uri("convene", here))
        else {
            return Err("the call's numbers do not make SIP addresses".to_owned());
        };
        let mut headers = vec![Header::Other(RELAY_HEADER.into(), relay.ticket.clone())];
        if let Some(password) = password {
            headers.push(Header::Other(ROOM_PASSWORD_HEADER.into(), password.to_owned()));
        }
        // The caller's codec and payload types only, so the audio passes through as it is.
        let session = u64::from(super::call::random_u32());
        let option = InviteOption {
            caller,
            callee,
            destination: Some(SipAddr { r#type: Some(Transport::Udp), addr: relay.gateway.into() }),
            content_type: Some("application/sdp".to_owned()),
            offer: Some(offer.answer(self.advertised_ip, port, session, 1).into_bytes()),
            contact,
            headers: Some(headers),
            ..Default::default()
        };
        let (states, state_receiver) = self.dialogs.new_dialog_state_channel();
        let (dialog, invited) = self
            .dialogs
            .do_invite_async(option, states)
            .map_err(|error| format!("the call was not placed: {error}"))?;
        let answered = match tokio::time::timeout(ANSWER_TIMEOUT, invited).await {
            Ok(Ok(Ok((_, Some(response))))) if response.status_code.kind() == sip::StatusCodeKind::Successful => {
                Offer::parse(&String::from_utf8_lossy(&response.body))
                    .map_err(|error| format!("the meeting's node answered without usable audio: {error}"))
                    .and_then(|answer| {
                        if answer.codec == offer.codec {
                            Ok(answer)
                        } else {
                            Err("the meeting's node answered in another codec".to_owned())
                        }
                    })
            }
            Ok(Ok(Ok((_, Some(response))))) => Err(format!("the meeting's node answered {}", response.status_code)),
            Ok(Ok(Ok((_, None)))) => Err("the meeting's node did not answer".to_owned()),
            Ok(Ok(Err(error))) => Err(format!("the meeting's node cannot be reached: {error}")),
            Ok(Err(_)) => Err("the call was lost".to_owned()),
            Err(_) => {
                let _ = dialog.cancel().await;
                Err("the meeting's node took too long to answer".to_owned())
            }
        };
        match answered {
            Ok(answer) => {
                let destination = answer.destination.map(|(ip, port)| SocketAddr::new(ip, port));
                Ok(RelayLeg { dialog, states: state_receiver, socket, destination })
            }
            Err(error) => {
                let _ = dialog.hangup().await;
                self.dialogs.remove_dialog(&dialog.id());
                Err(error)
            }
        }
    }
}

impl RelayLeg {
    /// The next datagram (read into `buffer`) or dialog change.
    pub(super) async fn next(&mut self, buffer: &mut [u8]) -> RelayEvent {
        tokio::select! {
            received = self.socket.recv_from(buffer) => RelayEvent::Datagram(received),
            state = self.states.recv() => RelayEvent::Dialog(state.map(Box::new)),
        }
    }

    /// Whether a datagram from `from` is the meeting's node's audio.
    pub(super) fn comes_from_node(&self, from: SocketAddr) -> bool {
        self.destination.is_some_and(|destination| destination.ip() == from.ip())
    }

    /// Passes the caller's datagram on to the meeting's node.
    pub(super) async fn forward(&self, datagram: &[u8]) {
        if let Some(destination) = self.destination
            && let Err(error) = self.socket.send_to(datagram, destination).await
        {
            tracing::debug!(%error, "a relayed datagram could not be sent");
        }
    }

    /// Passes on a key the caller sent as INFO (on a task: the call does not wait for the answer).
    pub(super) fn forward_info(&self, request: &sip::Request) {
        let dialog = self.dialog.clone();
        let content_type = request.header_value("Content-Type");
        let headers = content_type.map(|value| vec![Header::ContentType(value.into())]);
        let body = request.body.clone();
        tokio::spawn(async move {
            if let Err(error) = dialog.info(headers, Some(body)).await {
                tracing::debug!(%error, "a key could not be passed to the meeting's node");
            }
        });
    }

    /// Answers what the meeting's node asks within the call: nothing is renegotiated on this leg.
    pub(super) async fn answer(state: DialogState) {
        let (handle, status) = match state {
            DialogState::Options(_, _, handle) | DialogState::Info(_, _, handle) => (handle, StatusCode::OK),
            DialogState::Updated(_, _, handle) => (handle, StatusCode::NotAcceptableHere),
            DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle)
            | DialogState::Refer(_, _, handle)
            | DialogState::Publish(_, _, handle) => (handle, StatusCode::MethodNotAllowed),
            _ => return,
        };
        if let Err(error) = handle.respond(status, None, None).await {
            tracing::debug!(%error, "an in-dialog reply to the meeting's node could not be sent");
        }
    }

    /// Hangs up the leg (the meeting's node lets the caller go) and forgets its dialog.
    pub(super) async fn end<D>(self, shared: &Shared<D>) {
        if let Err(error) = self.dialog.hangup().await {
            tracing::debug!(%error, "a BYE to the meeting's node could not be sent");
        }
        shared.dialogs.remove_dialog(&self.dialog.id());
    }
}
