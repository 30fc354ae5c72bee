//! SIGINT, SIGTERM and SIGHUP in `generate`: a model load is stopped at once (nothing was
//! made yet), a generation is cancelled cleanly (the MP4 keeps what was made), a second signal
//! quits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sf_pipeline::CancelToken;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{CliError, console};

/// The exit code after a signal (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Watches for SIGINT, SIGTERM and SIGHUP on a thread of its own.
pub struct Interrupts {
    generating: Arc<AtomicBool>,
    cancel: CancelToken,
}

impl Interrupts {
    /// Installs the handler. Until [`generating`](Self::generating) is called a signal exits at
    /// once with code 130.
    pub fn install() -> Result<Self, CliError> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| CliError::Failed(format!("cannot install the signal handler: {e}")))?;
        let generating = Arc::new(AtomicBool::new(false));
        let cancel = CancelToken::new();
        let (flag, token) = (generating.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if !flag.load(Ordering::SeqCst) {
                        console::note("interrupted before generating: nothing was made");
                        std::process::exit(i32::from(INTERRUPTED));
                    }
                    if token.is_cancelled() {
                        console::note(
                            "interrupted again: quitting now (the MP4 written so far plays)",
                        );
                        std::process::exit(i32::from(INTERRUPTED));
                    }
                    token.cancel();
                    console::note(
                        "interrupted: stopping after the current model call and finishing the \
                         MP4 (interrupt again to quit at once)",
                    );
                }
            })
            .map_err(|e| CliError::Failed(format!("cannot start the signal thread: {e}")))?;
        Ok(Interrupts { generating, cancel })
    }

    /// From now on the first signal cancels [`token`](Self::token) instead of exiting.
    pub fn generating(&self) {
        self.generating.store(true, Ordering::SeqCst);
    }

    /// The token every request of the run carries.
    pub fn token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether a signal cancelled the run.
    pub fn interrupted(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
