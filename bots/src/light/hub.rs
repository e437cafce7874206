//! The light bots' media threads. Each runs many bots' sessions on one `epoll` (mio): one wake serves every
//! socket with datagrams waiting and every timer that is due, where a tokio task per bot was woken, with a
//! context switch, for a few datagrams at a time. Negotiation stays on the bot's tokio task, which hands each
//! step to the session's thread and awaits the message to send back.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use super::{Session, Step};
use crate::bot::BotError;

/// The most media threads: beyond this the bots would only take cores from the SFU they measure.
const MAX_THREADS: usize = 4;
/// The shortest turn: a thread that finished early sleeps out the rest, so that under load a wake serves a
/// turn's worth of datagrams rather than one (a wake costs more than forwarding a datagram). What a bot
/// measures is not delayed by it: a packet's delay ends when the kernel received it.
const TURN: Duration = Duration::from_millis(1);
/// Readiness events taken per wake.
const EVENTS: usize = 1024;
/// Batches one socket is read for in one turn; more waits a turn, so one busy bot cannot hold up the rest.
const BATCHES_PER_TURN: usize = 8;
const WAKER: Token = Token(usize::MAX);

/// What a bot's task asks of its session's thread.
enum Command {
    Open(u64, Box<Session>),
    Negotiate(u64, Step, oneshot::Sender<Result<Option<String>, BotError>>),
    Close(u64),
}

/// One media thread: where to send it commands, and how to wake it for them.
struct Thread {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl Thread {
    fn send(&self, command: Command) -> Result<(), BotError> {
        self.commands.send(command).map_err(|_| BotError::WebRtc("the bots' media thread ended".to_owned()))?;
        self.waker.wake().map_err(BotError::from)
    }
}

/// The media threads, started with the first light bot and kept for the process.
struct Hub {
    threads: Vec<Thread>,
    next_session: AtomicUsize,
}

fn hub() -> Result<&'static Hub, BotError> {
    static HUB: OnceLock<Result<Hub, String>> = OnceLock::new();
    HUB.get_or_init(|| {
        let count = std::thread::available_parallelism().map_or(1, |count| count.get()).min(MAX_THREADS);
        let threads = (0..count).map(start_thread).collect::<io::Result<_>>().map_err(|error| error.to_string())?;
        Ok(Hub { threads, next_session: AtomicUsize::new(0) })
    })
    .as_ref()
    .map_err(|error| BotError::WebRtc(format!("the bots' media threads did not start: {error}")))
}

/// A session on a media thread; dropping it closes the session.
pub(super) struct SessionHandle {
    id: u64,
    thread: &'static Thread,
}

/// Hands a session to a media thread (in turn, so the threads share the bots).
pub(super) fn open(session: Session) -> Result<SessionHandle, BotError> {
    let hub = hub()?;
    let index = hub.next_session.fetch_add(1, Ordering::Relaxed);
    let thread = &hub.threads[index % hub.threads.len()];
    let id = index as u64;
    thread.send(Command::Open(id, Box::new(session)))?;
    Ok(SessionHandle { id, thread })
}

impl SessionHandle {
    /// Runs a negotiation step on the session; answers the SDP to send the SFU, if any. An error has already
    /// ended the session (and the bot, with that reason).
    pub(super) async fn negotiate(&self, step: Step) -> Result<Option<String>, BotError> {
        let (reply, replied) = oneshot::channel();
        self.thread.send(Command::Negotiate(self.id, step, reply))?;
        replied.await.unwrap_or(Err(BotError::Left))
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        // The thread outlives every handle; a failed send means it is gone with its sessions.
        let _ = self.thread.send(Command::Close(self.id));
    }
}

fn start_thread(index: usize) -> io::Result<Thread> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (commands, received) = mpsc::channel();
    std::thread::Builder::new().name(format!("light-bots-{index}")).spawn(move || run(poll, &received))?;
    Ok(Thread { commands, waker })
}

/// A thread's loop: wait for readiness or the earliest timer, read what is ready, run what is due.
fn run(poll: Poll, commands: &mpsc::Receiver<Command>) {
    let mut sessions =
        Sessions { poll, by_token: HashMap::new(), tokens: HashMap::new(), next_token: 0, next_due: None };
    let mut events = Events::with_capacity(EVENTS);
    // Sessions whose socket still had datagrams when their turn ended.
    let mut unread: Vec<Token> = Vec::new();
    loop {
        let timeout = if unread.is_empty() {
            sessions.next_due.map(|due| due.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        if let Err(error) = sessions.poll.poll(&mut events, timeout)
            && error.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(%error, "the light bots' poller failed");
            let error = BotError::from(error);
            sessions.by_token.into_values().for_each(|session| session.finish(Err(error.clone())));
            return;
        }
        let turn = Instant::now();
        let mut ready = std::mem::take(&mut unread);
        ready.extend(events.iter().map(mio::event::Event::token).filter(|token| *token != WAKER));
        ready.sort_unstable();
        ready.dedup();
        for token in ready {
            if sessions.read(token) {
                unread.push(token);
            }
        }
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Open(id, session) => sessions.open(id, *session),
                Command::Negotiate(id, step, reply) => {
                    let _ = reply.send(sessions.negotiate(id, step));
                }
                Command::Close(id) => {
                    if let Some(&token) = sessions.tokens.get(&id) {
                        sessions.end(token, Ok(()));
                    }
                }
            }
        }
        sessions.run_due();
        if let Some(rest) = TURN.checked_sub(turn.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// A media thread's sessions.
struct Sessions {
    poll: Poll,
    by_token: HashMap<Token, Session>,
    tokens: HashMap<u64, Token>,
    next_token: usize,
    /// The earliest any session is due: sessions are looked through only then (or when one of them changed).
    next_due: Option<Instant>,
}

impl Sessions {
    fn open(&mut self, id: u64, session: Session) {
        let token = Token(self.next_token);
        self.next_token = (self.next_token + 1) % WAKER.0;
        let fd = session.socket.socket().as_raw_fd();
        if let Err(error) = self.poll.registry().register(&mut SourceFd(&fd), token, Interest::READABLE) {
            session.finish(Err(error.into()));
            return;
        }
        self.due_by(session.due(Instant::now()));
        self.tokens.insert(id, token);
        self.by_token.insert(token, session);
    }

    /// Runs a negotiation step and sends what it set off; an error ends the session.
    fn negotiate(&mut self, id: u64, step: Step) -> Result<Option<String>, BotError> {
        let token = *self.tokens.get(&id).ok_or(BotError::Left)?;
        let session = self.by_token.get_mut(&token).ok_or(BotError::Left)?;
        let now = Instant::now();
        let result = session.negotiate(step).and_then(|message| session.run_due(now).map(|()| message));
        match &result {
            Ok(_) => {
                let due = session.due(now);
                self.due_by(due);
            }
            Err(error) => self.end(token, Err(error.clone())),
        }
        result
    }

    /// Reads a session's socket for one turn; answers whether datagrams may still be waiting.
    fn read(&mut self, token: Token) -> bool {
        let Some(session) = self.by_token.get_mut(&token) else { return false };
        match session.read(BATCHES_PER_TURN) {
            Ok(more) => {
                // What was read may have connected the session, so its sources are due.
                let due = session.due(Instant::now());
                self.due_by(due);
                more
            }
            Err(error) => {
                self.end(token, Err(error));
                false
            }
        }
    }

    /// Runs every session's due work, once the earliest is due.
    fn run_due(&mut self) {
        let now = Instant::now();
        if self.next_due.is_none_or(|due| due > now) {
            return;
        }
        let mut failed = Vec::new();
        self.next_due = None;
        for (token, session) in &mut self.by_token {
            match session.run_due(now) {
                Ok(()) => self.next_due = earliest(self.next_due, session.due(now)),
                Err(error) => failed.push((*token, error)),
            }
        }
        for (token, error) in failed {
            self.end(token, Err(error));
        }
    }

    fn due_by(&mut self, due: Instant) {
        self.next_due = earliest(self.next_due, due);
    }

    /// Takes a session off the thread and ends it.
    fn end(&mut self, token: Token, result: Result<(), BotError>) {
        let Some(session) = self.by_token.remove(&token) else { return };
        self.tokens.retain(|_, other| *other != token);
        let fd = session.socket.socket().as_raw_fd();
        // The socket closes with the session in any case.
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        session.finish(result);
    }
}

/// The earlier of a known time, if any, and another.
fn earliest(known: Option<Instant>, other: Instant) -> Option<Instant> {
    Some(known.map_or(other, |known| known.min(other)))
}
