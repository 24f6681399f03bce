//! `quinn-udp`: quinn-udp 0.6 used the way quinn 0.11 uses it.
//!
//! - `UdpSocketState::new` configures each socket (nonblocking, `IP_RECVTOS`,
//!   `IP_PKTINFO`, `UDP_GRO`, `SO_TIMESTAMPNS`, PMTUD probe).
//! - Send: one `try_send` (one `sendmsg`) per `Transmit`, each a GSO train
//!   of `min(max_gso_segments(), what fits in 64 KiB)` datagrams. quinn
//!   itself caps a connection's train at 10 (`MAX_TRANSMIT_SEGMENTS`); we
//!   give quinn-udp the same 64 KiB trains as everybody else instead, so the
//!   baseline is not handicapped.
//! - Receive: quinn's `RecvState` buffers: `BATCH_SIZE` chunks of
//!   `max_udp_payload_size (1472) * gro_segments()` bytes, one `recv` (one
//!   `recvmmsg`) per call, each meta split at `stride`.
//! - Readiness: epoll via mio, as quinn's tokio runtime does.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};

use super::endpoint::{self, fit_segments, is_retry, Burst, Endpoint, Ready, Role, SockOpts, Train};

/// quinn-proto's default `EndpointConfig::max_udp_payload_size`.
const QUINN_MAX_UDP_PAYLOAD: usize = 1472;

#[derive(Debug)]
pub(crate) struct QuinnEndpoint {
    socks: Vec<UdpSocket>,
    states: Vec<UdpSocketState>,
    ready: Ready,
    send_buf: Vec<u8>,
    recv_buf: Box<[u8]>,
    metas: [RecvMeta; BATCH_SIZE],
    trains: Vec<Train>,
    syscalls: u64,
}

impl Endpoint for QuinnEndpoint {
    fn bind(n: usize, role: Role, opts: &SockOpts) -> io::Result<Self> {
        let ready = Ready::new(n)?;
        let mut socks = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        for i in 0..n {
            let s: UdpSocket = endpoint::socket(opts)?.into();
            let state = UdpSocketState::new(UdpSockRef::from(&s))?;
            ready.register(i, &s, role)?;
            socks.push(s);
            states.push(state);
        }
        let gro = states[0].gro_segments();
        Ok(Self {
            socks,
            states,
            ready,
            send_buf: vec![0; 1 << 16],
            recv_buf: vec![0; QUINN_MAX_UDP_PAYLOAD * gro * BATCH_SIZE].into_boxed_slice(),
            metas: [RecvMeta::default(); BATCH_SIZE],
            trains: Vec::new(),
            syscalls: 0,
        })
    }

    fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.socks.iter().map(UdpSocket::local_addr).collect()
    }

    fn buffer_sizes(&self) -> (usize, usize) {
        endpoint::granted(&self.socks[0])
    }

    fn train_segments(&self, size: usize) -> usize {
        self.states[0].max_gso_segments().min(fit_segments(size))
    }

    fn describe(&self) -> String {
        format!(
            "sendmsg per transmit (GSO, max_gso_segments {}), recvmmsg x{} (gro_segments {}, {} B chunks)",
            self.states[0].max_gso_segments(),
            BATCH_SIZE,
            self.states[0].gro_segments(),
            self.recv_buf.len() / BATCH_SIZE
        )
    }

    fn prepare(&mut self, plan: &[Burst], size: usize) {
        self.trains = endpoint::trains(plan, self.train_segments(size));
    }

    fn send_plan(&mut self, size: usize, seq: &mut u64, stop: &dyn Fn() -> bool) -> io::Result<u64> {
        let mut sent = 0;
        for t in &self.trains {
            let bytes = t.segments * size;
            let buf = &mut self.send_buf[..bytes];
            endpoint::stamp(buf, size, *seq);
            let tx = Transmit {
                destination: t.to,
                ecn: None,
                contents: buf,
                segment_size: (t.segments > 1).then_some(size),
                src_ip: None,
            };
            let (state, sock) = (&self.states[t.from], &self.socks[t.from]);
            let op = || state.try_send(UdpSockRef::from(sock), &tx);
            if endpoint::retry_send(&mut self.ready, &mut self.syscalls, stop, op)?.is_none() {
                return Ok(sent);
            }
            *seq += t.segments as u64;
            sent += t.segments as u64;
        }
        Ok(sent)
    }

    fn send_one(&mut self, from: usize, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let tx = Transmit { destination: to, ecn: None, contents: payload, segment_size: None, src_ip: None };
        let (state, sock) = (&self.states[from], &self.socks[from]);
        let op = || state.try_send(UdpSockRef::from(sock), &tx);
        endpoint::retry_send(&mut self.ready, &mut self.syscalls, &|| false, op).map(drop)
    }

    fn recv<F: FnMut(usize, SocketAddr, &[u8])>(&mut self, mut on: F) -> io::Result<usize> {
        let Some(i) = self.ready.next()? else { return Ok(0) };
        // As quinn's `RecvState::poll_socket`: iovecs rebuilt per call over
        // the long-lived buffer.
        let chunk = self.recv_buf.len() / BATCH_SIZE;
        let mut chunks = self.recv_buf.chunks_mut(chunk).map(IoSliceMut::new);
        let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| chunks.next().unwrap_or_else(|| IoSliceMut::new(&mut [])));
        self.syscalls += 1;
        let msgs = match self.states[i].recv(UdpSockRef::from(&self.socks[i]), &mut iovs, &mut self.metas) {
            Ok(n) => n,
            Err(e) if is_retry(&e) => return Ok(0),
            Err(e) => return Err(e),
        };
        if msgs == BATCH_SIZE {
            self.ready.requeue(i);
        }
        let mut delivered = 0;
        for (meta, buf) in self.metas.iter().zip(iovs.iter()).take(msgs) {
            let stride = meta.stride.max(1);
            for d in buf[..meta.len].chunks(stride) {
                on(i, meta.addr, d);
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    fn syscalls(&self) -> u64 {
        self.syscalls + self.ready.waits
    }
}
