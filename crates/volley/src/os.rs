//! The socket handle under one set of names, so the portable code says
//! `BorrowedFd`, `OwnedFd`, `AsFd` on every platform.
//!
//! - Unix: `std::os::fd`'s types, re-exported unchanged.
//! - Windows: a socket is a `SOCKET`, not a descriptor: `BorrowedFd` is
//!   `std::os::windows::io::BorrowedSocket`, `OwnedFd` is `OwnedSocket`,
//!   and `AsFd` is a trait implemented for every `AsSocket` type (std's,
//!   socket2's, tokio's sockets), so an API that takes `impl AsFd` takes
//!   any Windows socket.
//!
//! And `Handle` (crate-private): what a [`crate::Socket`] owns. On Unix
//! a `socket2::Socket` registered with mio by descriptor; on Windows mio
//! registers UDP sockets only as its own `mio::net::UdpSocket` (its IOCP
//! emulation of readiness), so the handle is one of those, and every
//! datapath call goes through its `try_io`, which re-arms readiness when
//! the call meets `WouldBlock`.

use std::io;

#[cfg(unix)]
pub use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
#[cfg(unix)]
pub(crate) use std::os::fd::{AsRawFd, RawFd};

#[cfg(windows)]
use std::os::windows::io::{AsRawSocket, AsSocket};
#[cfg(windows)]
pub use std::os::windows::io::{BorrowedSocket as BorrowedFd, OwnedSocket as OwnedFd};

/// A borrowable socket: `std::os::fd::AsFd` on Unix; on Windows this
/// trait, implemented for every `AsSocket` type.
#[cfg(windows)]
pub trait AsFd {
    /// Borrows the socket.
    fn as_fd(&self) -> BorrowedFd<'_>;
}

#[cfg(windows)]
impl<T: AsSocket + ?Sized> AsFd for T {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.as_socket()
    }
}

/// The raw handle as Winsock's functions take it (`SOCKET`).
#[cfg(windows)]
pub(crate) type RawFd = windows_sys::Win32::Networking::WinSock::SOCKET;

/// `as_raw_fd()` on a borrowed Windows socket: its `SOCKET`.
#[cfg(windows)]
pub(crate) trait AsRawFd {
    fn as_raw_fd(&self) -> RawFd;
}

#[cfg(windows)]
impl AsRawFd for BorrowedFd<'_> {
    fn as_raw_fd(&self) -> RawFd {
        // A SOCKET is a pointer-sized handle; RawSocket widens it to u64.
        self.as_raw_socket() as RawFd
    }
}

/// The socket a [`crate::Socket`] owns (see the module docs).
#[derive(Debug)]
pub(crate) struct Handle {
    #[cfg(unix)]
    inner: socket2::Socket,
    #[cfg(windows)]
    inner: mio::net::UdpSocket,
}

impl Handle {
    pub(crate) fn new(sock: socket2::Socket) -> Self {
        #[cfg(unix)]
        return Self { inner: sock };
        #[cfg(windows)]
        return Self { inner: mio::net::UdpSocket::from_std(sock.into()) };
    }

    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Self::new(socket2::Socket::from(fd))
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        #[cfg(unix)]
        return self.inner.into();
        #[cfg(windows)]
        return std::net::UdpSocket::from(self.inner).into();
    }

    pub(crate) fn into_std(self) -> std::net::UdpSocket {
        #[cfg(unix)]
        return self.inner.into();
        #[cfg(windows)]
        return self.inner.into();
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        AsFd::as_fd(&self.inner)
    }

    /// The socket as socket2 sees it, for its option calls.
    pub(crate) fn sock(&self) -> socket2::SockRef<'_> {
        socket2::SockRef::from(&self.inner)
    }

    /// Runs one datapath call. On Windows through mio's `try_io`, which
    /// re-arms the socket's readiness only when the call reports
    /// `WouldBlock` (else mio would never report it ready again). volley's
    /// contract lets a caller stop after a *short* receive or send without
    /// meeting `WouldBlock`, so every call tells mio `WouldBlock` and
    /// returns its own result: readiness is re-armed after each call (at
    /// worst one spurious wake-up). On Unix readiness needs no help.
    pub(crate) fn io<T>(&self, f: impl FnOnce() -> Result<T, crate::Error>) -> Result<T, crate::Error> {
        #[cfg(unix)]
        return f();
        #[cfg(windows)]
        {
            let mut out = None;
            let rearmed: io::Result<()> = self.inner.try_io(|| {
                out = Some(f());
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            });
            match out {
                Some(r) => r,
                None => Err(crate::Error::Io(rearmed.err().unwrap_or_else(|| io::ErrorKind::WouldBlock.into()))),
            }
        }
    }
}

impl mio::event::Source for Handle {
    fn register(&mut self, registry: &mio::Registry, token: mio::Token, interests: mio::Interest) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.inner.as_raw_fd()).register(registry, token, interests);
        #[cfg(windows)]
        return self.inner.register(registry, token, interests);
    }

    fn reregister(&mut self, registry: &mio::Registry, token: mio::Token, interests: mio::Interest) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.inner.as_raw_fd()).reregister(registry, token, interests);
        #[cfg(windows)]
        return self.inner.reregister(registry, token, interests);
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        #[cfg(unix)]
        return mio::unix::SourceFd(&self.inner.as_raw_fd()).deregister(registry);
        #[cfg(windows)]
        return self.inner.deregister(registry);
    }
}
