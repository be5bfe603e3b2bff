//! SIGINT and SIGTERM, heard once for the whole run: every part of a run that must stop on a
//! signal (the import's scheduler, the export's pager) waits on the same [`Shutdown`].

use tokio::sync::watch;

/// Whether a signal asked the run to stop; cheap to clone, and to wait on in a `select!`.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Start listening for the signals (on the current runtime).
    pub fn listen() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            let _ = tx.send(true);
        });
        Shutdown { requested: rx }
    }

    /// Whether a signal has come: for work that runs on a thread of its own and looks
    /// between its steps (a sql source's rows copied into the spool).
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a signal came (at once if one already has); cancel-safe.
    pub async fn requested(&mut self) {
        if self.requested.wait_for(|asked| *asked).await.is_err() {
            // The listener is gone without a signal: none will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
