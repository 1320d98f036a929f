//! Every plugin entry point runs inside [`guard`]: abi_stable aborts the whole
//! process when a panic unwinds across the boundary, so a panic is caught here
//! and turned into a [`PluginError`] of kind `PANIC` carrying its message and,
//! when the plugin was loaded by the host (which installs the panic hook), the
//! source location.

use std::{
    any::Any,
    cell::{Cell, RefCell},
    panic::{catch_unwind, AssertUnwindSafe},
};

use abi_stable::std_types::RResult;

use crate::{ErrorKind, PluginError, Result};

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static SITE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, turning a panic into an error that names `what`.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> RResult<T, PluginError> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    match outcome {
        Ok(result) => result.into(),
        Err(payload) => {
            let site = SITE.with(|s| s.borrow_mut().take());
            let mut message = format!("panicked in {what}: {}", payload_text(payload.as_ref()));
            if let Some(site) = site {
                message.push_str(&format!(" (at {site})"));
            }
            RResult::RErr(PluginError::new(ErrorKind::PANIC, message))
        }
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Installed in a dynamically loaded plugin (its std is its own): inside an
/// entry point it records where the panic happened, for the error message;
/// elsewhere (a thread the plugin spawned) it reports through the log bridge,
/// since the host never sees that panic otherwise.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let site = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        if DEPTH.with(|d| d.get()) > 0 {
            SITE.with(|s| *s.borrow_mut() = site);
        } else {
            tracing::error!(target: "plugin_panic", "a plugin thread panicked: {info}");
        }
    }));
}
