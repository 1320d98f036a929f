//! The one error type that crosses the plugin boundary.

use std::fmt;

use abi_stable::{std_types::RString, StableAbi};

/// What kind of failure a [`PluginError`] reports. A newtype over `u32` rather
/// than an enum so that later ABI versions can add kinds without changing the
/// layout that already-built plugins were checked against.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The plugin's configuration section is invalid.
    pub const CONFIG: Self = Self(1);
    /// The caller passed input the plugin cannot work with (shapes, ids, sizes).
    pub const INPUT: Self = Self(2);
    /// The GPU or the host's compute context refused or failed an operation.
    pub const GPU: Self = Self(3);
    /// Exported or imported state does not match the plugin's own.
    pub const STATE: Self = Self(4);
    /// The plugin panicked; the message carries the panic's text.
    pub const PANIC: Self = Self(5);
    /// The plugin does not provide what was asked (e.g. a scorer from a model-only plugin).
    pub const UNSUPPORTED: Self = Self(6);
    /// Anything else.
    pub const INTERNAL: Self = Self(7);

    pub fn name(self) -> &'static str {
        match self {
            Self::CONFIG => "config",
            Self::INPUT => "input",
            Self::GPU => "gpu",
            Self::STATE => "state",
            Self::PANIC => "panic",
            Self::UNSUPPORTED => "unsupported",
            Self::INTERNAL => "internal",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error returned by a plugin entry point, or by the host's compute context
/// to a plugin. The message is one line meant for a person.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl PluginError {
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self { kind, message: RString::from(message.to_string()) }
    }
    pub fn config(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::CONFIG, message)
    }
    pub fn input(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::INPUT, message)
    }
    pub fn gpu(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::GPU, message)
    }
    pub fn state(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::STATE, message)
    }
    pub fn unsupported(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::UNSUPPORTED, message)
    }
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }
    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self::new(self.kind, format!("{context}: {}", self.message))
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_str())
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginError({:?}: {})", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// The result type plugin authors write.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;
