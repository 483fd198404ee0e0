//! Bodies that stream through the gateway frame by frame, never buffered.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::backend::{BackendState, Outstanding};

/// The body of a request sent to a backend: the client's own body, or none
/// (a retried request without a body is rebuilt with this).
pub(crate) enum OutBody {
    Client(Incoming),
    Empty,
}

impl Body for OutBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            OutBody::Client(body) => Pin::new(body).poll_frame(cx),
            OutBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutBody::Client(body) => body.is_end_stream(),
            OutBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Client(body) => body.size_hint(),
            OutBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body of a response to a client: a backend's body streamed through, or
/// a small body written by the gateway itself.
pub struct GatewayBody {
    kind: Kind,
}

enum Kind {
    Proxied {
        inner: Incoming,
        /// Hands the backend connection back to the pool once the body is
        /// complete; dropped early, the connection closes with it.
        release: Option<Release>,
    },
    Full(Option<Bytes>),
}

/// What a proxied response holds until its body is complete.
pub(crate) struct Release {
    /// The connection, unless it must not be reused.
    pub(crate) sender: Option<SendRequest<OutBody>>,
    pub(crate) outstanding: Outstanding,
}

impl Release {
    /// Pools the connection (the response is complete) and ends the count
    /// of the request in flight.
    fn complete(self) {
        if let Some(sender) = self.sender {
            let backend: &Arc<BackendState> = &self.outstanding.0;
            backend.put_idle(sender);
        }
    }
}

impl GatewayBody {
    pub(crate) fn proxied(inner: Incoming, release: Release) -> GatewayBody {
        let mut body = GatewayBody {
            kind: Kind::Proxied {
                inner,
                release: Some(release),
            },
        };
        body.release_if_done();
        body
    }

    pub(crate) fn full(bytes: Bytes) -> GatewayBody {
        GatewayBody {
            kind: Kind::Full(Some(bytes).filter(|b| !b.is_empty())),
        }
    }

    pub(crate) fn empty() -> GatewayBody {
        GatewayBody {
            kind: Kind::Full(None),
        }
    }

    /// Once the backend's body has ended, its connection can serve another request.
    fn release_if_done(&mut self) {
        if let Kind::Proxied { inner, release } = &mut self.kind
            && inner.is_end_stream()
            && let Some(release) = release.take()
        {
            release.complete();
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Proxied { inner, release } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Some(release) = release.take() {
                            release.complete();
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        // The backend connection is broken: never pool it.
                        release.take();
                    }
                    Poll::Ready(Some(Ok(_))) => this.release_if_done(),
                    Poll::Pending => {}
                }
                polled
            }
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Proxied { inner, .. } => inner.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Proxied { inner, .. } => inner.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Proxied { .. } => f.write_str("GatewayBody::Proxied"),
            Kind::Full(bytes) => write!(
                f,
                "GatewayBody::Full({} bytes)",
                bytes.as_ref().map_or(0, Bytes::len)
            ),
        }
    }
}
