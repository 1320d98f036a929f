//! `cargo xtask run [-- ARGS]`: build in release and run the main job.
//! `cargo xtask test [-- ARGS]`: prepare the machine and run the whole test suite.
//!
//! Both make sure a Vulkan driver exists first: on a machine without a GPU
//! driver they install Mesa's software Vulkan (lavapipe) through apt when they
//! can (root, or sudo without a password), and otherwise stop with one line
//! saying exactly what to run.
//!
//! `test` also prepares the Python environment the Bittensor SDK interop tests
//! run against: a venv in `target/sdk-venv`, made with the machine's `python3`
//! (or `$NEURON_PYTHON`), holding exactly `tests/python/requirements.txt`, kept
//! while that file is unchanged, and exported to the tests as `NEURON_TEST_PYTHON`.

use std::{
    env,
    path::{Path, PathBuf},
    process::{exit, Command, ExitStatus},
};

/// The plugin the main job runs (the runtime issue replaces it with the GPT plugin).
const MAIN_PLUGIN_PACKAGE: &str = "neuron-plugin-template";
const MAIN_PLUGIN_LIBRARY: &str = "template";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest.iter().skip_while(|a| *a == "--").cloned().collect::<Vec<_>>()),
        None => usage(),
    };
    let root = workspace_root();
    env::set_current_dir(&root).unwrap_or_else(|e| fail(&format!("cannot enter {}: {e}", root.display())));
    match command {
        "test" => test(&rest),
        "run" => run(&rest),
        "-h" | "--help" | "help" => {
            print_usage();
        }
        other => {
            eprintln!("error: unknown xtask `{other}`");
            usage()
        }
    }
}

fn print_usage() {
    println!("usage: cargo xtask run [-- neuron-host args]   build (release) and run the main job");
    println!("       cargo xtask test [-- cargo test args]   prepare the machine and run the whole test suite");
}

fn usage() -> ! {
    print_usage();
    exit(2)
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ is in the workspace").to_path_buf()
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(cmd: &mut Command) -> ExitStatus {
    cmd.status().unwrap_or_else(|e| fail(&format!("cannot run {cmd:?}: {e}")))
}

fn exit_with(s: ExitStatus) -> ! {
    exit(s.code().unwrap_or(1))
}

fn test(args: &[String]) {
    ensure_vulkan();
    quiet_headless_display_probe();
    let python = ensure_sdk_venv();
    let started = std::time::Instant::now();
    let s = status(cargo().args(["test", "--workspace"]).args(args).env("NEURON_TEST_PYTHON", &python));
    eprintln!("xtask: tests finished in {:.0} s", started.elapsed().as_secs_f64());
    exit_with(s)
}

fn run(args: &[String]) {
    ensure_vulkan();
    let s = status(cargo().args(["build", "--release", "-p", "neuron-host", "-p", MAIN_PLUGIN_PACKAGE]));
    if !s.success() {
        exit_with(s);
    }
    let library = format!("{}{MAIN_PLUGIN_LIBRARY}{}", env::consts::DLL_PREFIX, env::consts::DLL_SUFFIX);
    let exe = Path::new("target/release").join(format!("neuron-host{}", env::consts::EXE_SUFFIX));
    let plugin = Path::new("target/release").join(library);
    eprintln!("xtask: {} --plugin {} {}", exe.display(), plugin.display(), args.join(" "));
    exit_with(status(Command::new(&exe).arg("--plugin").arg(&plugin).args(args)))
}

const SDK_REQUIREMENTS: &str = "tests/python/requirements.txt";
const SDK_VENV: &str = "target/sdk-venv";

/// Makes sure `target/sdk-venv` holds exactly the pinned requirements; returns
/// its interpreter. A copy of the requirements inside the venv marks a
/// complete install, so an interrupted one is redone and a changed file
/// rebuilds the venv from scratch.
fn ensure_sdk_venv() -> PathBuf {
    let requirements =
        std::fs::read(SDK_REQUIREMENTS).unwrap_or_else(|e| fail(&format!("cannot read {SDK_REQUIREMENTS}: {e}")));
    let venv = Path::new(SDK_VENV);
    let python = venv.join("bin").join("python");
    let marker = venv.join("requirements.installed");
    if python.exists() && std::fs::read(&marker).ok().as_deref() == Some(requirements.as_slice()) {
        return env::current_dir().map(|d| d.join(&python)).unwrap_or(python);
    }
    let base = env::var("NEURON_PYTHON").unwrap_or_else(|_| "python3".into());
    const FIX: &str = "install Python 3.10 or newer with venv (on Debian/Ubuntu: `sudo apt-get install -y python3 python3-venv`), or set NEURON_PYTHON to one";
    eprintln!("xtask: preparing the Bittensor SDK test environment in {SDK_VENV} (pinned in {SDK_REQUIREMENTS})");
    let started = std::time::Instant::now();
    if venv.exists() {
        std::fs::remove_dir_all(venv).unwrap_or_else(|e| fail(&format!("cannot remove the old {SDK_VENV}: {e}")));
    }
    let made = Command::new(&base).args(["-m", "venv"]).arg(venv).status();
    if !made.map(|s| s.success()).unwrap_or(false) || !python.exists() {
        fail(&format!("cannot create a Python venv with `{base} -m venv`: {FIX}"));
    }
    let installed = status(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "-r"])
            .arg(SDK_REQUIREMENTS),
    );
    if !installed.success() {
        fail(&format!(
            "installing {SDK_REQUIREMENTS} into {SDK_VENV} failed (is PyPI reachable?); fix that and rerun `cargo xtask test`"
        ));
    }
    std::fs::write(&marker, &requirements).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", marker.display())));
    eprintln!("xtask: SDK test environment ready in {:.0} s", started.elapsed().as_secs_f64());
    env::current_dir().map(|d| d.join(&python)).unwrap_or(python)
}

/// Mesa's drivers print an error per probe for a Wayland display when
/// `XDG_RUNTIME_DIR` is unset; a set (even absent) directory keeps them quiet.
fn quiet_headless_display_probe() {
    if env::var_os("XDG_RUNTIME_DIR").is_none() && env::var_os("WAYLAND_DISPLAY").is_none() {
        env::set_var("XDG_RUNTIME_DIR", env::temp_dir().join("neuron-host-no-display"));
    }
}

/// Directories where Vulkan loaders find drivers (ICD manifests).
const ICD_DIRS: &[&str] = &["/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d"];

fn has_vulkan_driver() -> bool {
    if env::var_os("VK_ICD_FILENAMES").is_some() || env::var_os("VK_DRIVER_FILES").is_some() {
        return true;
    }
    let has_manifest = ICD_DIRS.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json")))
            .unwrap_or(false)
    });
    let has_loader = Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libvulkan.so.1"))
        .unwrap_or(true);
    has_manifest && has_loader
}

fn ensure_vulkan() {
    if !cfg!(target_os = "linux") || has_vulkan_driver() {
        return;
    }
    const FIX: &str = "sudo apt-get install -y mesa-vulkan-drivers";
    if Command::new("apt-get").arg("--version").output().is_err() {
        fail(&format!(
            "no Vulkan driver found: install your GPU's Vulkan driver or Mesa's software Vulkan (lavapipe; on Debian/Ubuntu: `{FIX}`)"
        ));
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let sudo = !is_root && Command::new("sudo").args(["-n", "true"]).status().map(|s| s.success()).unwrap_or(false);
    if !is_root && !sudo {
        fail(&format!("no Vulkan driver found: run `{FIX}` (Mesa's software Vulkan), then retry"));
    }
    eprintln!("xtask: no Vulkan driver found; installing Mesa's software Vulkan (mesa-vulkan-drivers)");
    let apt = |args: &[&str]| {
        let mut c = if sudo {
            let mut c = Command::new("sudo");
            c.arg("-n").arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        status(&mut c).success()
    };
    let installed = apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "mesa-vulkan-drivers"]);
    if !installed || !has_vulkan_driver() {
        fail(&format!("installing Mesa's software Vulkan failed: run `{FIX}` yourself, then retry"));
    }
}
