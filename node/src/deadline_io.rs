//! A connection whose reads and writes have deadlines: a write the peer does not
//! take within `write_stall`, or (when set) a read that brings nothing for
//! `read_idle`, fails with `TimedOut`, and the server holding the connection drops
//! it. hyper and tonic have no write timeout of their own, so a client that stops
//! reading a response would otherwise hold its descriptor for ever.
//!
//! A timer runs only while an operation is pending and restarts whenever bytes
//! move, so slow but steady transfers are never cut.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct DeadlineIo<T> {
    inner: T,
    read_idle: Option<Duration>,
    write_stall: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

/// The error a missed deadline produces; [`missed_deadline`] recognises it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Missed(&'static str);

impl<T> DeadlineIo<T> {
    pub fn new(inner: T, read_idle: Option<Duration>, write_stall: Duration) -> Self {
        Self {
            inner,
            read_idle,
            write_stall,
            read_timer: None,
            write_timer: None,
        }
    }
}

/// True when `error` (or any error it wraps) is a missed read or write deadline.
pub fn missed_deadline(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(missed) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Missed>())
        {
            return Some(missed.0);
        }
        current = e.source();
    }
    None
}

/// Polls `timer` (started on first use); an elapsed timer is the error.
fn expired(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    cx: &mut Context<'_>,
    what: &'static str,
) -> Poll<io::Error> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    ready!(sleep.as_mut().poll(cx));
    Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, Missed(what)))
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => match this.read_idle {
                Some(limit) => expired(&mut this.read_timer, limit, cx, "read_timeout").map(Err),
                None => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> DeadlineIo<T> {
    fn write_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.write_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                expired(&mut self.write_timer, self.write_stall, cx, "write_timeout").map(Err)
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_op(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_op(cx, |io, cx| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_stall_limit() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut io = DeadlineIo::new(ours, None, Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let e = io.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(missed_deadline(&e), Some("write_timeout"));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn steady_progress_is_never_cut_and_idle_reads_are() {
        let (ours, mut theirs) = tokio::io::duplex(16);
        let mut io = DeadlineIo::new(ours, Some(Duration::from_secs(3)), Duration::from_secs(2));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 160 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                got += theirs.read(&mut buf).await.unwrap();
            }
            theirs
        });
        // Ten seconds of writing, never stalled for two.
        io.write_all(&[1u8; 160]).await.unwrap();
        let _theirs = reader.await.unwrap();
        let mut buf = [0u8; 4];
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(missed_deadline(&e), Some("read_timeout"));
    }
}
