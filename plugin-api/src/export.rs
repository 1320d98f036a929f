//! [`export_plugin!`](crate::export_plugin) and the hidden helpers it expands to.

/// Declares the plugin: write it once, at the crate root, naming a function
/// that returns the [`Plugin`](crate::Plugin) descriptor.
///
/// It exports the abi_stable library header the host looks for, built from
/// this crate's re-exports so a plugin needs no dependency but plugin-api. Every
/// entry point it generates runs inside a panic guard.
#[macro_export]
macro_rules! export_plugin {
    ($descriptor:path) => {
        const _: () = {
            use $crate::__private as __p;

            static DESCRIPTOR: ::std::sync::OnceLock<$crate::Plugin> = ::std::sync::OnceLock::new();

            fn descriptor() -> &'static $crate::Plugin {
                DESCRIPTOR.get_or_init(|| $descriptor().with_version(env!("CARGO_PKG_VERSION")))
            }

            extern "C" fn info() -> __p::RResult<$crate::PluginInfo, $crate::PluginError> {
                __p::info(descriptor)
            }
            extern "C" fn init(host: $crate::abi::HostServices) -> __p::RResult<(), $crate::PluginError> {
                __p::init(descriptor, host)
            }
            extern "C" fn new_model(
                gpu: $crate::abi::ComputeBox,
                config: __p::RStr<'_>,
            ) -> __p::RResult<$crate::abi::ModelBox, $crate::PluginError> {
                __p::new_model(descriptor, gpu, config)
            }
            extern "C" fn new_scorer(
                gpu: $crate::abi::ComputeBox,
                config: __p::RStr<'_>,
            ) -> __p::RResult<$crate::abi::ScorerBox, $crate::PluginError> {
                __p::new_scorer(descriptor, gpu, config)
            }
            fn root_module() -> $crate::abi::PluginModRef {
                __p::root_module(info, init, new_model, new_scorer)
            }
            extern "C" fn erased_root_module() -> __p::RootModuleResult {
                __p::__call_root_module_loader(root_module)
            }

            // The symbol abi_stable's loader looks up (checked against
            // abi_stable's own constant in plugin-api's tests).
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static LIB_HEADER: __p::LibHeader = unsafe {
                __p::LibHeader::from_constructor::<$crate::abi::PluginModRef>(
                    erased_root_module,
                    __p::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::{
        library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult},
        std_types::{RResult, RStr},
    };

    use crate::{
        abi::{ComputeBox, HostServices, ModelBox, PluginMod, PluginModRef, ScorerBox},
        guard::guard,
        model::model_box,
        scorer::scorer_box,
        Gpu, Plugin, PluginError, PluginInfo,
    };

    /// The symbol name the export macro writes as a literal.
    pub const LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

    pub fn info(descriptor: fn() -> &'static Plugin) -> RResult<PluginInfo, PluginError> {
        guard("info", || Ok(descriptor().info()))
    }

    pub fn init(descriptor: fn() -> &'static Plugin, host: HostServices) -> RResult<(), PluginError> {
        guard("init", || {
            crate::logging::install(&host);
            crate::guard::install_panic_hook();
            let _ = descriptor();
            Ok(())
        })
    }

    pub fn new_model(
        descriptor: fn() -> &'static Plugin,
        gpu: ComputeBox,
        config: RStr<'_>,
    ) -> RResult<ModelBox, PluginError> {
        guard("model constructor", || descriptor().build_model(Gpu::from_raw(gpu), config.as_str()).map(model_box))
    }

    pub fn new_scorer(
        descriptor: fn() -> &'static Plugin,
        gpu: ComputeBox,
        config: RStr<'_>,
    ) -> RResult<ScorerBox, PluginError> {
        guard("scorer constructor", || descriptor().build_scorer(Gpu::from_raw(gpu), config.as_str()).map(scorer_box))
    }

    type NewModel = extern "C" fn(ComputeBox, RStr<'_>) -> RResult<ModelBox, PluginError>;
    type NewScorer = extern "C" fn(ComputeBox, RStr<'_>) -> RResult<ScorerBox, PluginError>;

    pub fn root_module(
        info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
        init: extern "C" fn(HostServices) -> RResult<(), PluginError>,
        new_model: NewModel,
        new_scorer: NewScorer,
    ) -> PluginModRef {
        PluginMod { info, init, new_model, new_scorer }.leak_into_prefix()
    }

    #[cfg(test)]
    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(LOADER_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
