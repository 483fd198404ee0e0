//! Messages to the engine.

use tokio::sync::{mpsc, oneshot};

/// What the engine can be asked.
#[derive(Debug)]
pub(crate) enum Message {
    /// Finish the block in progress, stop, then answer.
    Stop {
        /// Answered once stopped.
        done: oneshot::Sender<()>,
    },
}

/// The engine's mailbox: cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox {
    sender: mpsc::Sender<Message>,
}

impl Mailbox {
    pub(super) fn new(sender: mpsc::Sender<Message>) -> Mailbox {
        Mailbox { sender }
    }

    /// Stops the engine after the block in progress; returns once it has
    /// stopped (at once if it already had).
    pub(crate) async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.sender.send(Message::Stop { done }).await.is_ok() {
            // An error means the engine is gone already, which is what was asked.
            let _ = stopped.await;
        }
    }
}
