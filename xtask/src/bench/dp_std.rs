//! `std`: `std::net::UdpSocket`, one `send_to` / `recv_from` per datagram,
//! the way a std user writes it: blocking sockets with timeouts, except a
//! receiver with many sockets, which needs readiness (nonblocking + mio).

use std::io;
use std::net::{SocketAddr, UdpSocket};

use super::endpoint::{self, is_retry, Burst, Endpoint, Ready, Role, SockOpts, POLL};

#[derive(Debug)]
pub(crate) struct StdEndpoint {
    socks: Vec<UdpSocket>,
    /// Set for a receiving side with more than one socket.
    ready: Option<Ready>,
    buf: Vec<u8>,
    plan: Vec<Burst>,
    syscalls: u64,
}

impl Endpoint for StdEndpoint {
    fn bind(n: usize, role: Role, opts: &SockOpts) -> io::Result<Self> {
        let multi_recv = n > 1 && role != Role::Send;
        let ready = if multi_recv { Some(Ready::new(n)?) } else { None };
        let mut socks = Vec::with_capacity(n);
        for i in 0..n {
            let s: UdpSocket = endpoint::socket(opts)?.into();
            if let Some(r) = &ready {
                s.set_nonblocking(true)?;
                r.register(i, &s, role)?;
            } else {
                s.set_read_timeout(Some(POLL))?;
                s.set_write_timeout(Some(POLL))?;
            }
            socks.push(s);
        }
        Ok(Self { socks, ready, buf: vec![0; 1 << 16], plan: Vec::new(), syscalls: 0 })
    }

    fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.socks.iter().map(UdpSocket::local_addr).collect()
    }

    fn buffer_sizes(&self) -> (usize, usize) {
        endpoint::granted(&self.socks[0])
    }

    fn train_segments(&self, _size: usize) -> usize {
        1
    }

    fn describe(&self) -> String {
        "send_to / recv_from per datagram; blocking (mio when one thread reads many sockets)".into()
    }

    fn prepare(&mut self, plan: &[Burst], _size: usize) {
        self.plan = plan.to_vec();
    }

    fn send_plan(&mut self, size: usize, seq: &mut u64, stop: &dyn Fn() -> bool) -> io::Result<u64> {
        let mut sent = 0;
        for b in &self.plan {
            let mut left = b.count;
            while left > 0 {
                let d = &mut self.buf[..size];
                endpoint::stamp(d, size, *seq);
                self.syscalls += 1;
                match self.socks[b.from].send_to(d, b.to) {
                    Ok(_) => {
                        *seq += 1;
                        sent += 1;
                        left -= 1;
                    }
                    Err(e) if is_retry(&e) => {
                        if stop() {
                            return Ok(sent);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(sent)
    }

    fn send_one(&mut self, from: usize, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        self.syscalls += 1;
        self.socks[from].send_to(payload, to).map(drop)
    }

    fn recv<F: FnMut(usize, SocketAddr, &[u8])>(&mut self, mut on: F) -> io::Result<usize> {
        let i = match &mut self.ready {
            None => 0,
            Some(r) => match r.next()? {
                Some(i) => i,
                None => return Ok(0),
            },
        };
        self.syscalls += 1;
        match self.socks[i].recv_from(&mut self.buf) {
            Ok((n, src)) => {
                if let Some(r) = &mut self.ready {
                    r.requeue(i);
                }
                on(i, src, &self.buf[..n]);
                Ok(1)
            }
            Err(e) if is_retry(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn syscalls(&self) -> u64 {
        self.syscalls + self.ready.as_ref().map_or(0, |r| r.waits)
    }
}
