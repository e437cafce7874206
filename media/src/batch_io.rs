//! Batched UDP for a shard, through quinn-udp (safe wrappers over `recvmmsg` with GRO and `sendmsg` with
//! GSO): one system call reads up to [`BATCH`] datagrams, and runs of equal-sized datagrams to one
//! destination (a video frame's packets to one receiver) go out in one call. Buffers are allocated once.
//!
//! The socket is tokio's (a shard, awaiting readiness) or a plain non-blocking one that a caller polls
//! itself (the light bots, many sockets on one `epoll`).

use std::{
    io::{self, IoSliceMut},
    net::SocketAddr,
    time::Duration,
};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::{io::Interest, net::UdpSocket};

/// Datagrams read per system call.
pub const BATCH: usize = 32;
/// Room for one datagram; anything longer is not WebRTC's (which keeps under the path MTU).
const DATAGRAM: usize = 2048;
/// The most segments one GSO send carries (the kernel's limit is 64).
const GSO_SEGMENTS: usize = 32;

/// A socket (a shard's, or a light bot's) with its batch buffers.
pub struct BatchSocket<S = UdpSocket> {
    socket: S,
    state: UdpSocketState,
    /// One slot per datagram, or per GRO super-datagram of up to `gro` segments.
    receive: Vec<u8>,
    slot: usize,
    meta: Vec<RecvMeta>,
    /// The run being gathered for one GSO send.
    run: Run,
    max_segments: usize,
    sent: SendTally,
}

/// What the socket handed the kernel so far (datagrams it dropped for a full buffer included): how well
/// runs gather is datagrams per send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendTally {
    /// Send system calls (`sendmsg`, one GSO run each).
    pub sends: u64,
    /// Datagrams they carried.
    pub datagrams: u64,
}

#[derive(Default)]
struct Run {
    destination: Option<SocketAddr>,
    segment: usize,
    count: usize,
    bytes: Vec<u8>,
}

/// A non-blocking UDP socket as the batch code reads it.
pub trait Datagrams {
    /// The socket, for quinn-udp's calls.
    fn sock_ref(&self) -> UdpSockRef<'_>;

    /// Runs a non-blocking read; a `WouldBlock` must leave the socket able to report readiness again.
    fn try_read(&self, read: impl FnOnce(UdpSockRef<'_>) -> io::Result<usize>) -> io::Result<usize>;
}

impl Datagrams for UdpSocket {
    fn sock_ref(&self) -> UdpSockRef<'_> {
        UdpSockRef::from(self)
    }

    fn try_read(&self, read: impl FnOnce(UdpSockRef<'_>) -> io::Result<usize>) -> io::Result<usize> {
        // Through tokio, so that a `WouldBlock` clears the readiness `readable` waits on.
        self.try_io(Interest::READABLE, || read(UdpSockRef::from(self)))
    }
}

/// A caller's own poller (edge-triggered) tracks readiness: it reads until `Ok(0)`.
impl Datagrams for std::net::UdpSocket {
    fn sock_ref(&self) -> UdpSockRef<'_> {
        UdpSockRef::from(self)
    }

    fn try_read(&self, read: impl FnOnce(UdpSockRef<'_>) -> io::Result<usize>) -> io::Result<usize> {
        read(UdpSockRef::from(self))
    }
}

impl BatchSocket {
    /// Wraps a bound, non-blocking socket (inside the shard's runtime).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::over(UdpSocket::from_std(socket)?)
    }

    /// Waits until datagrams can be read.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }
}

impl<S: Datagrams> BatchSocket<S> {
    /// Wraps a bound, non-blocking socket.
    pub fn over(socket: S) -> io::Result<Self> {
        let state = UdpSocketState::new(socket.sock_ref())?;
        let slot = DATAGRAM * state.gro_segments().max(1);
        let max_segments = state.max_gso_segments().clamp(1, GSO_SEGMENTS);
        Ok(Self {
            socket,
            state,
            receive: vec![0; slot * BATCH],
            slot,
            meta: vec![RecvMeta::default(); BATCH],
            run: Run { bytes: Vec::with_capacity(DATAGRAM * GSO_SEGMENTS), ..Run::default() },
            max_segments,
            sent: SendTally::default(),
        })
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// Reads what is waiting, one batch, handing each datagram to `each`; `Ok(0)` when nothing was.
    pub fn receive(&mut self, mut each: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        self.receive_timed(|source, datagram, _| each(source, datagram))
    }

    /// [`receive`](Self::receive), with when the kernel received each datagram (since the UNIX epoch; quinn-udp
    /// asks for `SO_TIMESTAMPNS`), so a reader that gathers datagrams for a while still knows when each came.
    pub fn receive_timed(&mut self, mut each: impl FnMut(SocketAddr, &[u8], Option<Duration>)) -> io::Result<usize> {
        let Self { socket, state, receive, slot, meta, .. } = self;
        // On the stack: nothing is allocated per batch.
        let mut chunks = receive.chunks_mut(*slot);
        let mut slices: [IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let read = socket.try_read(|socket| state.recv(socket, &mut slices, meta));
        let count = match read {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut datagrams = 0;
        for (meta, slice) in meta.iter().zip(&slices).take(count) {
            let received = &slice[..meta.len.min(slice.len())];
            if received.is_empty() {
                // An empty datagram is still a datagram (to be counted and dropped).
                each(meta.addr, received, meta.timestamp);
                datagrams += 1;
            }
            for datagram in received.chunks(meta.stride.max(1)) {
                each(meta.addr, datagram, meta.timestamp);
                datagrams += 1;
            }
        }
        Ok(datagrams)
    }

    /// Queues a datagram: it joins the current run when it goes to the same place and fits the run's
    /// segment size (a shorter one ends the run), else the run goes out first. Send with [`flush`].
    ///
    /// [`flush`]: BatchSocket::flush
    pub fn send(&mut self, destination: SocketAddr, contents: &[u8]) {
        let run = &self.run;
        let joins = run.destination == Some(destination)
            && contents.len() <= run.segment
            // An empty datagram would vanish inside a run (a segment of no bytes).
            && !contents.is_empty()
            && run.count < self.max_segments
            // A shorter datagram can only be a run's last.
            && run.bytes.len() == run.count * run.segment;
        if !joins {
            self.flush();
            self.run.destination = Some(destination);
            self.run.segment = contents.len();
        }
        self.run.bytes.extend_from_slice(contents);
        self.run.count += 1;
    }

    /// What was sent so far.
    pub fn sent(&self) -> SendTally {
        self.sent
    }

    /// Sends the run gathered so far. Datagrams the kernel cannot take now are dropped, as the network
    /// would drop them; other errors concern one destination and are logged.
    pub fn flush(&mut self) {
        let Some(destination) = self.run.destination.take() else { return };
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: &self.run.bytes,
            segment_size: (self.run.count > 1).then_some(self.run.segment),
            src_ip: None,
        };
        self.sent.sends += 1;
        self.sent.datagrams += self.run.count as u64;
        if let Err(error) = self.state.try_send(self.socket.sock_ref(), &transmit)
            && error.kind() != io::ErrorKind::WouldBlock
        {
            tracing::debug!(%error, %destination, "media send failed");
        }
        self.run.bytes.clear();
        self.run.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn bind() -> std::net::UdpSocket {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
        socket.set_nonblocking(true).expect("non-blocking");
        socket
    }

    async fn pair() -> (BatchSocket, BatchSocket) {
        let (Ok(a), Ok(b)) = (BatchSocket::new(bind()), BatchSocket::new(bind())) else { panic!("batch sockets") };
        (a, b)
    }

    /// Each datagram as (length, first byte), so a failure prints readably.
    fn summary(datagrams: &[Vec<u8>]) -> Vec<(usize, Option<u8>)> {
        datagrams.iter().map(|datagram| (datagram.len(), datagram.first().copied())).collect()
    }

    /// Reads until `count` datagrams arrived or two seconds passed.
    async fn read(socket: &mut BatchSocket, count: usize) -> Vec<Vec<u8>> {
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while received.len() < count && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(100), socket.readable()).await;
            let _ = socket.receive(|_, datagram| received.push(datagram.to_vec()));
        }
        received
    }

    /// Sends `sent` from one socket to another, as runs (one flush at the end) or one datagram per call,
    /// and checks that exactly those datagrams arrive, in order; answers the sender's tally and whether it
    /// may send runs (GSO).
    async fn assert_arrive(sent: &[Vec<u8>], as_runs: bool) -> (SendTally, bool) {
        let (mut sender, mut receiver) = pair().await;
        let Ok(destination) = receiver.socket.local_addr() else { panic!("address") };
        for datagram in sent {
            sender.send(destination, datagram);
            if !as_runs {
                sender.flush();
            }
        }
        sender.flush();
        let received = read(&mut receiver, sent.len()).await;
        assert_eq!(summary(&received), summary(sent));
        assert!(received == sent, "the contents changed on the way");
        assert_eq!(sender.sent().datagrams, sent.len() as u64);
        (sender.sent(), sender.max_segments > 1)
    }

    #[tokio::test]
    async fn runs_and_odd_sizes_arrive_as_the_datagrams_they_were() {
        // A frame's packets (a run of equal sizes), its shorter last one, then other sizes on their own.
        let mut sent: Vec<Vec<u8>> = (0..5u8).map(|index| vec![index; 1200]).collect();
        sent.extend([vec![9; 300], vec![7; 1200], vec![], vec![8; 40]]);
        let (tally, runs) = assert_arrive(&sent, true).await;
        // The frame and its last packet in one send, then one each.
        assert_eq!(tally.sends, if runs { 4 } else { 9 });
    }

    #[tokio::test]
    async fn more_than_a_batch_waiting_is_read_over_several_calls() {
        let sent: Vec<Vec<u8>> =
            (0..BATCH as u16 * 3).map(|index| index.to_be_bytes().repeat(50 + usize::from(index % 7))).collect();
        let (tally, _) = assert_arrive(&sent, false).await;
        assert_eq!(tally.sends, tally.datagrams, "flushed one by one");
    }

    #[test]
    fn a_plain_socket_is_read_until_empty_with_each_datagram_s_arrival_time() {
        let (sender, mut receiver) = (bind(), BatchSocket::over(bind()).expect("batch socket"));
        let destination = receiver.socket().local_addr().expect("address");
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        for index in 0..3u8 {
            sender.send_to(&[index; 100], destination).expect("sent");
        }
        let mut arrivals = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while arrivals.len() < 3 && Instant::now() < deadline {
            let read = receiver.receive_timed(|_, datagram, arrived| arrivals.push((datagram[0], arrived)));
            if read.expect("read") == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(arrivals.iter().map(|(first, _)| *first).collect::<Vec<_>>(), [0, 1, 2]);
        let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        for (_, arrived) in arrivals {
            let arrived = arrived.expect("the kernel stamps each datagram");
            assert!(before <= arrived && arrived <= after, "{arrived:?} not within {before:?}..{after:?}");
        }
        assert_eq!(receiver.receive_timed(|_, _, _| {}).expect("read"), 0, "nothing left");
    }
}
