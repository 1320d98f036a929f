//! Kernels declared once in Rust and checked when they are built.
//!
//! WGSL bindings are positional and a uniform struct must match its Rust mirror byte for byte.
//! Written down only in comments, a mistake shows when the kernel runs, as garbage. A
//! [`KernelDecl`] states them once, beside the Rust that dispatches the kernel:
//!
//! ```no_run
//! # use neuron_plugin_api::prelude::*;
//! # const SOURCE: &str = "";
//! # fn build(gpu: &Gpu) -> Result<Kernel> {
//! #[repr(C)]
//! #[derive(Copy, Clone, Pod, Zeroable)]
//! #[bytemuck(crate = "neuron_plugin_api::bytemuck")]
//! struct Params { rows: u32, cols: u32, scale: f32, _pad: u32 }
//! neuron_plugin_api::uniform_layout!(Params { rows, cols, scale, _pad });
//!
//! let kernel = gpu.kernel(
//!     KernelDecl::new(SOURCE, "scale_rows").read("input").write("output").uniform::<Params>(),
//! )?;
//! # Ok(kernel)
//! # }
//! ```
//!
//! [`Gpu::kernel`](crate::Gpu::kernel) compiles it and compares what the host reflected from the
//! WGSL with the declaration: the storage bindings in binding order (name and whether the kernel
//! writes them), the uniform block's size, and every named member's offset and size (members
//! whose name starts with `_` are padding and only their bytes are compared, through the size).
//! A difference is an error naming the kernel and the first binding or member that differs.

use std::borrow::Cow;

use crate::{KernelInfo, PluginError, Result};

/// Whether a kernel only reads a storage binding or also writes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
}

impl Access {
    fn wgsl(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "read_write",
        }
    }
}

/// One member of a Rust uniform struct: its name, byte offset and size.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UniformField {
    pub name: &'static str,
    pub offset: u32,
    pub size: u32,
}

/// A `#[repr(C)]` plain-data struct that mirrors a kernel's uniform block. Implement it with
/// [`uniform_layout!`](crate::uniform_layout), which lists the fields once and takes their
/// offsets from the compiler.
pub trait Uniform: bytemuck::Pod {
    /// Every field, in declaration order.
    fn fields() -> Vec<UniformField>;
}

/// Implements [`Uniform`] for a `#[repr(C)]` struct by naming its fields:
/// `uniform_layout!(Params { rows, cols, scale, _pad });`. Offsets and sizes come from
/// `core::mem::offset_of!` and the field types, so they cannot drift from the struct.
#[macro_export]
macro_rules! uniform_layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::Uniform for $ty {
            fn fields() -> ::std::vec::Vec<$crate::UniformField> {
                fn size_of_field<T, F>(_: fn(&T) -> &F) -> u32 {
                    ::core::mem::size_of::<F>() as u32
                }
                ::std::vec![$($crate::UniformField {
                    name: ::core::stringify!($field),
                    offset: ::core::mem::offset_of!($ty, $field) as u32,
                    size: size_of_field::<$ty, _>(|v: &$ty| &v.$field),
                }),*]
            }
        }
    };
}

/// A kernel as its Rust caller sees it: WGSL source, entry point, the storage bindings in
/// binding order, and the uniform type, if any.
#[derive(Clone, Debug)]
pub struct KernelDecl<'a> {
    source: Cow<'a, str>,
    entry: &'a str,
    bindings: Vec<(&'a str, Access)>,
    uniform: Option<(&'static str, u32, Vec<UniformField>)>,
}

impl<'a> KernelDecl<'a> {
    pub fn new(source: impl Into<Cow<'a, str>>, entry: &'a str) -> Self {
        Self { source: source.into(), entry, bindings: Vec::new(), uniform: None }
    }

    /// The next storage binding, which the kernel only reads.
    pub fn read(mut self, name: &'a str) -> Self {
        self.bindings.push((name, Access::Read));
        self
    }

    /// The next storage binding, which the kernel writes (or reads and writes).
    pub fn write(mut self, name: &'a str) -> Self {
        self.bindings.push((name, Access::ReadWrite));
        self
    }

    /// The kernel's uniform block mirrors `U`.
    pub fn uniform<U: Uniform>(mut self) -> Self {
        self.uniform = Some((std::any::type_name::<U>(), std::mem::size_of::<U>() as u32, U::fields()));
        self
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn entry(&self) -> &str {
        self.entry
    }

    /// Compares the declaration with what the host reflected from the WGSL; the error names the
    /// kernel and the first difference.
    pub fn check(&self, info: &KernelInfo) -> Result<()> {
        let fail = |what: String| Err(PluginError::gpu(format!("kernel `{}`: {what}", self.entry)));
        let wgsl: Vec<(&str, Access)> = info
            .bindings
            .iter()
            .map(|b| (b.name.as_str(), if b.read_only { Access::Read } else { Access::ReadWrite }))
            .collect();
        let show = |list: &[(&str, Access)]| {
            list.iter().map(|(n, a)| format!("{n} ({})", a.wgsl())).collect::<Vec<_>>().join(", ")
        };
        if wgsl != self.bindings {
            let at = wgsl
                .iter()
                .zip(&self.bindings)
                .position(|(a, b)| a != b)
                .unwrap_or(wgsl.len().min(self.bindings.len()));
            return fail(format!(
                "storage binding {} differs: the WGSL binds [{}], the Rust declares [{}]",
                at,
                show(&wgsl),
                show(&self.bindings)
            ));
        }
        match (&self.uniform, info.uniform_size) {
            (None, 0) => Ok(()),
            (None, size) => fail(format!(
                "the WGSL has a uniform block of {size} bytes; declare its Rust mirror with `.uniform::<T>()`"
            )),
            (Some((ty, _, _)), 0) => {
                fail(format!("`.uniform::<{ty}>()` is declared, but the WGSL has no uniform block"))
            }
            (Some((ty, size, fields)), wgsl_size) => {
                if *size != wgsl_size {
                    return fail(format!(
                        "the WGSL uniform block is {wgsl_size} bytes, {ty} is {size}; pad one to match the other"
                    ));
                }
                let named = |n: &str| !n.is_empty() && !n.starts_with('_');
                for m in info.uniform_members.iter().filter(|m| named(m.name.as_str())) {
                    match fields.iter().find(|f| f.name == m.name.as_str()) {
                        None => {
                            return fail(format!("the WGSL uniform member `{}` has no field of that name in {ty}", m.name))
                        }
                        Some(f) if f.offset != m.offset || f.size != m.size => {
                            return fail(format!(
                                "uniform member `{}` is at byte {} ({} bytes) in the WGSL but at byte {} ({} bytes) in {ty}",
                                m.name, m.offset, m.size, f.offset, f.size
                            ))
                        }
                        Some(_) => {}
                    }
                }
                if let Some(f) = fields
                    .iter()
                    .filter(|f| named(f.name))
                    .find(|f| !info.uniform_members.iter().any(|m| m.name.as_str() == f.name))
                {
                    return fail(format!("{ty} has a field `{}` the WGSL uniform block lacks", f.name));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KernelBinding, KernelId, UniformMember};

    #[repr(C)]
    #[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
    struct Params {
        rows: u32,
        scale: f32,
        _pad: [u32; 2],
    }
    crate::uniform_layout!(Params { rows, scale, _pad });

    /// What the host reflects from `struct Params { rows: u32, scale: f32, _pad0: u32, _pad1: u32 }`
    /// with `x` (read) at binding 0 and `y` (read_write) at binding 1.
    fn info() -> KernelInfo {
        let binding = |binding, name: &str, read_only| KernelBinding { binding, name: name.into(), read_only };
        let member = |name: &str, offset| UniformMember { name: name.into(), offset, size: 4 };
        KernelInfo {
            id: KernelId(1),
            entry: "scale".into(),
            workgroup_size: [64, 1, 1],
            bindings: vec![binding(0, "x", true), binding(1, "y", false)].into(),
            uniform_size: 16,
            uniform_members: vec![member("rows", 0), member("scale", 4), member("_pad0", 8), member("_pad1", 12)]
                .into(),
        }
    }

    fn error(decl: KernelDecl<'_>) -> String {
        decl.check(&info()).unwrap_err().message.to_string()
    }

    #[test]
    fn a_declaration_that_matches_the_wgsl_passes() {
        assert_eq!(Params::fields()[1], UniformField { name: "scale", offset: 4, size: 4 });
        assert_eq!(Params::fields()[2], UniformField { name: "_pad", offset: 8, size: 8 });
        KernelDecl::new("", "scale").read("x").write("y").uniform::<Params>().check(&info()).unwrap();
    }

    #[test]
    fn each_difference_is_named() {
        let e = error(KernelDecl::new("", "scale").read("y").write("x").uniform::<Params>());
        assert_eq!(e, "kernel `scale`: storage binding 0 differs: the WGSL binds [x (read), y (read_write)], the Rust declares [y (read), x (read_write)]");
        let e = error(KernelDecl::new("", "scale").read("x").read("y").uniform::<Params>());
        assert!(e.contains("storage binding 1 differs") && e.contains("y (read_write)"), "{e}");
        let e = error(KernelDecl::new("", "scale").read("x").uniform::<Params>());
        assert!(e.contains("storage binding 1 differs"), "{e}");
        let e = error(KernelDecl::new("", "scale").read("x").write("y"));
        assert!(e.contains("uniform block of 16 bytes; declare its Rust mirror"), "{e}");
    }

    #[test]
    fn a_uniform_of_another_size_or_layout_is_named() {
        #[repr(C)]
        #[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
        struct Short {
            rows: u32,
            scale: f32,
        }
        crate::uniform_layout!(Short { rows, scale });
        let e = error(KernelDecl::new("", "scale").read("x").write("y").uniform::<Short>());
        assert!(e.contains("the WGSL uniform block is 16 bytes") && e.contains("is 8"), "{e}");

        #[repr(C)]
        #[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
        struct Swapped {
            scale: f32,
            rows: u32,
            _pad: [u32; 2],
        }
        crate::uniform_layout!(Swapped { scale, rows, _pad });
        let e = error(KernelDecl::new("", "scale").read("x").write("y").uniform::<Swapped>());
        assert!(e.contains("uniform member `rows` is at byte 0 (4 bytes) in the WGSL but at byte 4 (4 bytes)"), "{e}");

        #[repr(C)]
        #[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
        struct Extra {
            rows: u32,
            scale: f32,
            count: u32,
            _pad: u32,
        }
        crate::uniform_layout!(Extra { rows, scale, count, _pad });
        let e = error(KernelDecl::new("", "scale").read("x").write("y").uniform::<Extra>());
        assert!(e.contains("has a field `count` the WGSL uniform block lacks"), "{e}");
    }
}
