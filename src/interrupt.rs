//! Ctrl-C during an operation that changes the fleet. The first one asks the operation to stop
//! at its next safe point (the instance in flight is finished and back in Traefik, the lock is
//! released); a second one stops at once, saying what is left to do. Outside such operations
//! Ctrl-C keeps its usual meaning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static LEFT_TO_DO: Mutex<String> = Mutex::new(String::new());
static INSTALL: Once = Once::new();

/// From now on Ctrl-C (or SIGTERM, or SIGHUP: a closed terminal or SSH session) asks for a
/// graceful stop instead of killing the process.
pub fn graceful(what: &str) {
    set_left_to_do(&format!("{what} was interrupted before it changed anything"));
    INSTALL.call_once(|| {
        let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(signals) => signals,
            Err(err) => {
                eprintln!("warning: cannot catch Ctrl-C ({err}); it will stop rcfleet at once");
                return;
            }
        };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    let left = LEFT_TO_DO.lock().map(|l| l.clone()).unwrap_or_default();
                    eprintln!("\nStopped at once. {left}");
                    eprintln!("The deploy lock may still be held: check with `rcfleet lock status`.");
                    std::process::exit(130);
                }
                eprintln!("\nStopping at the next safe point (finishing what is in flight); press Ctrl-C again to stop at once.");
            }
        });
    });
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// What a stop at once would leave undone, for the message a second Ctrl-C prints.
pub fn set_left_to_do(text: &str) {
    if let Ok(mut left) = LEFT_TO_DO.lock() {
        *left = text.to_string();
    }
}
