//! volley-tokio: [volley]'s batched, offloaded UDP on the tokio runtime.
//!
//! - [`UdpSocket`]: a [`volley::Socket`] registered with tokio's reactor,
//!   with tokio's method triad on `&self`: `recv_batch().await` /
//!   `poll_recv_batch(cx)` / `try_recv_batch()` and the same for
//!   `send_batch`, plus `readable` / `writable`. One `recvmmsg` fills a
//!   [`volley::RecvBatch`] (GRO trains split back into datagrams, each with
//!   its [`volley::RecvMeta`]); one `sendmmsg` sends a slice of
//!   [`volley::Transmit`]s, GSO for multi-segment ones.
//! - [`DatagramStream`]: a [`Stream`](futures_core::Stream) of owned
//!   [`Datagram`]s (`meta` + [`bytes::Bytes`] payload), GRO segments sliced
//!   from one shared buffer, no allocation per datagram in steady state.
//! - [`SendQueue`]: a bounded queue of [`Outgoing`] datagrams (also a
//!   [`Sink`](futures_sink::Sink)) that coalesces same-destination,
//!   same-size datagrams into GSO trains and sends many destinations with
//!   one `sendmmsg`.
//! - `quinn::QuinnSocket` (feature `quinn`): quinn's
//!   `AsyncUdpSocket`, so a `quinn::Endpoint` runs over volley.
//!
//! ```
//! use std::sync::Arc;
//! use futures_util::StreamExt;
//! use volley_tokio::{volley::Ecn, DatagramStream, Outgoing, SendQueue, UdpSocket};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = Arc::new(UdpSocket::bind("127.0.0.1:0".parse().unwrap())?);
//! let client = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
//!
//! // The server echoes from a task; the socket is shared by the stream
//! // (receiving) and the queue (sending).
//! let (mut rx, mut tx) = (DatagramStream::new(server.clone()), SendQueue::new(server.clone()));
//! tokio::spawn(async move {
//!     while let Some(Ok(d)) = rx.next().await {
//!         let mut reply = Outgoing::new(d.meta.src, d.payload).with_ecn(d.meta.ecn);
//!         if let Some(ip) = d.meta.dst_ip {
//!             reply = reply.with_src_ip(ip); // answer from the address we were reached on
//!         }
//!         if tx.push(reply).await.is_err() || tx.flush().await.is_err() {
//!             break;
//!         }
//!     }
//! });
//!
//! let t = volley::Transmit::new(server.local_addr()?, b"hello").with_ecn(Ecn::Ect0);
//! client.send_batch(&[t]).await?;
//! let mut batch = volley::RecvBatch::new();
//! client.recv_batch(&mut batch).await?;
//! let (meta, payload) = batch.iter().next().unwrap();
//! assert_eq!(payload, b"hello");
//! assert_eq!(meta.ecn, Ecn::Ect0);
//! # Ok(()) }
//! ```
//!
//! # Runtimes
//!
//! Works on the current-thread and the multi-thread runtime; sockets must be
//! created inside one (with I/O enabled). Everything is `Send + Sync`.
//!
//! # How it degrades
//!
//! Exactly as the core does (see [`volley`]'s docs): without GSO a queued
//! train goes out one datagram per message, without GRO every datagram is
//! its own message, without `recvmmsg`/`sendmmsg` one syscall per datagram.
//! [`UdpSocket::capabilities`] says what is in use.
//!
//! # Errors
//!
//! All I/O returns [`std::io::Result`]. A typed [`volley::Error`] that is not
//! a plain OS error travels inside the `io::Error`; recover it with
//! `e.get_ref().and_then(|e| e.downcast_ref::<volley::Error>())`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod queue;
#[cfg(feature = "quinn")]
pub mod quinn;
mod socket;
mod stream;

pub use queue::{Outgoing, SendQueue};
pub use socket::UdpSocket;
pub use stream::{Datagram, DatagramStream};
/// The core crate, re-exported so the versions always match.
pub use volley;
