//! `cargo xtask run [-- ARGS]`: build in release and run the main job.
//! `cargo xtask test [-- ARGS]`: prepare the machine and run the whole test suite.
//! `cargo xtask bench-gpu`: the GPU benchmark in one run ([`bench_gpu`]).
//!
//! Both make sure the system has what they need first — a Vulkan driver
//! (Mesa's software Vulkan, lavapipe, on a machine without a GPU), and for
//! the tests a TrueType font and a Prometheus server — installing the
//! missing Debian packages through apt when they can (root, or sudo without a
//! password), and otherwise stopping with one line saying exactly what to run.
//!
//! `test` first checks that the real finney metadata the chain tests read is
//! beside the checkout (`../shared/chain/`, or `$NEURON_SHARED_CHAIN`).
//!
//! `test` also prepares the Python environments the interop tests run
//! against: venvs under `target/python/`, made with the machine's `python3`
//! (or `$NEURON_PYTHON`), each holding exactly its pinned requirements file,
//! kept while that file is unchanged, exported to the tests as
//! `NEURON_TEST_PYTHON` (bittensor 11), `NEURON_TEST_PYTHON_SDK10` and
//! `NEURON_TEST_PYTHON_HF` (torch and transformers, for the GPT-2 interop).

mod bench_gpu;

use std::{
    env,
    path::{Path, PathBuf},
    process::{exit, Command, ExitStatus},
};

/// The plugin the main job runs (the runtime issue replaces it with the GPT plugin).
const MAIN_PLUGIN_PACKAGE: &str = "neuron-plugin-gpt";
const MAIN_PLUGIN_LIBRARY: &str = "gpt";
/// The scorer the local subnet finds beside the model plugin.
const MAIN_SCORER_PACKAGE: &str = "neuron-scoring-loss";

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
        "bench-gpu" => bench_gpu::bench_gpu(),
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
    println!(
        "       cargo xtask bench-gpu                   matmul, GPT-2 training and PyTorch's on this machine's GPU"
    );
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
    ensure_shared_chain();
    ensure_system(true);
    quiet_headless_display_probe();
    for (var, name, requirements) in PYTHON_ENVS {
        let python = python_env(name, requirements);
        env::set_var(var, python);
    }
    let started = std::time::Instant::now();
    let s = status(cargo().args(["test", "--workspace"]).args(args));
    eprintln!("xtask: tests finished in {:.0} s", started.elapsed().as_secs_f64());
    exit_with(s)
}

fn run(args: &[String]) {
    ensure_system(false);
    let s = status(cargo().args([
        "build",
        "--release",
        "-p",
        "neuron-host",
        "-p",
        MAIN_PLUGIN_PACKAGE,
        "-p",
        MAIN_SCORER_PACKAGE,
    ]));
    if !s.success() {
        exit_with(s);
    }
    let library = format!("{}{MAIN_PLUGIN_LIBRARY}{}", env::consts::DLL_PREFIX, env::consts::DLL_SUFFIX);
    let exe = Path::new("target/release").join(format!("neuron-host{}", env::consts::EXE_SUFFIX));
    let plugin = Path::new("target/release").join(library);
    eprintln!("xtask: {} --plugin {} {}", exe.display(), plugin.display(), args.join(" "));
    exit_with(status(Command::new(&exe).arg("--plugin").arg(&plugin).args(args)))
}

/// The chain tests read the real finney metadata, which lives outside the repository: stop at once,
/// before any build, when it is missing rather than fail those tests minutes later.
fn ensure_shared_chain() {
    let dir = match env::var_os("NEURON_SHARED_CHAIN") {
        Some(d) => PathBuf::from(d),
        None => Path::new("..").join("shared").join("chain"),
    };
    let missing: Vec<&str> = ["finney-metadata-v14-spec343.scale", "finney-metadata-v16-spec393.scale"]
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        let shown = dir.canonicalize().unwrap_or_else(|_| env::current_dir().unwrap_or_default().join(&dir));
        fail(&format!(
            "the chain tests need the real finney metadata ({}) in {}: put the project's shared/ folder \
             beside the checkout, or set NEURON_SHARED_CHAIN to a folder that holds those files",
            missing.join(", "),
            shown.display()
        ));
    }
}

/// Python environments the interop tests need: (variable the tests read, venv name, requirements).
const PYTHON_ENVS: &[(&str, &str, &str)] = &[
    ("NEURON_TEST_PYTHON", "sdk11", "tests/python/requirements.txt"),
    ("NEURON_TEST_PYTHON_SDK10", "sdk10", "tests/python/requirements-sdk10.txt"),
    ("NEURON_TEST_PYTHON_HF", "hf", "tests/python/requirements-hf.txt"),
];

/// A venv under target/python/NAME with REQUIREMENTS installed, rebuilt when
/// the requirements file changes. Returns its interpreter.
fn python_env(name: &str, requirements: &str) -> PathBuf {
    let dir = Path::new("target/python").join(name);
    let python = dir.join("bin/python");
    let wanted =
        std::fs::read_to_string(requirements).unwrap_or_else(|e| fail(&format!("cannot read {requirements}: {e}")));
    let stamp = dir.join("requirements.installed");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv_python(&python);
    }
    eprintln!("xtask: preparing the Python environment {} from {requirements}", dir.display());
    let started = std::time::Instant::now();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| fail(&format!("cannot remove the old {}: {e}", dir.display())));
    }
    let base = env::var("NEURON_PYTHON").unwrap_or_else(|_| "python3".into());
    let made = Command::new(&base).args(["-m", "venv"]).arg(&dir).status();
    if !made.map(|s| s.success()).unwrap_or(false) || !python.exists() {
        fail(&format!(
            "cannot create a Python venv with `{base} -m venv`: install Python 3.10 or newer with venv (Debian/Ubuntu: `sudo apt-get install -y python3 python3-venv`), or set NEURON_PYTHON to one"
        ));
    }
    let pip = |args: &[&str]| {
        status(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"])
                .args(args),
        )
        .success()
    };
    if !pip(&["-r", requirements]) {
        fail(&format!(
            "installing {requirements} into {} failed: pip's error is above (most often PyPI unreachable, or the disk full: the torch venv takes about 5 GB); fix that and retry, or set it up by hand",
            dir.display()
        ));
    }
    std::fs::write(&stamp, wanted).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", stamp.display())));
    eprintln!("xtask: {} ready in {:.0} s", dir.display(), started.elapsed().as_secs_f64());
    venv_python(&python)
}

/// The venv's interpreter as an absolute path. Not canonicalized: bin/python is
/// a symlink to the base interpreter, and resolving it would leave the venv.
fn venv_python(python: &Path) -> PathBuf {
    std::path::absolute(python).unwrap_or_else(|_| python.to_path_buf())
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

/// What the tests need from the system, and the Debian package that provides it.
struct SystemNeed {
    what: &'static str,
    package: &'static str,
    present: fn() -> bool,
    /// Needed by `cargo xtask run` too (not only by the tests).
    for_run: bool,
}

const NEEDS: &[SystemNeed] = &[
    SystemNeed {
        what: "a Vulkan driver (Mesa's software Vulkan when there is no GPU)",
        package: "mesa-vulkan-drivers",
        present: has_vulkan_driver,
        for_run: true,
    },
    SystemNeed {
        what: "a TrueType font for report plots",
        package: "fonts-dejavu-core",
        present: has_font,
        for_run: false,
    },
    SystemNeed {
        what: "a Prometheus server for the metrics test",
        package: "prometheus",
        present: has_prometheus,
        for_run: false,
    },
];

fn has_font() -> bool {
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"]
        .iter()
        .any(|p| Path::new(p).is_file())
        || env::var_os("NEURON_REPORT_FONT").is_some()
}

fn has_prometheus() -> bool {
    Command::new("prometheus").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// Installs, through apt, the Debian packages whose need is missing; or stops
/// with one line saying exactly what to run.
fn ensure_system(for_tests: bool) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let missing: Vec<&SystemNeed> = NEEDS.iter().filter(|n| (for_tests || n.for_run) && !(n.present)()).collect();
    if missing.is_empty() {
        return;
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    let fix = format!("sudo apt-get install -y {}", packages.join(" "));
    let what: Vec<&str> = missing.iter().map(|n| n.what).collect();
    if Command::new("apt-get").arg("--version").output().is_err() {
        fail(&format!(
            "missing {}: install the equivalent of Debian's {} with your package manager",
            what.join("; "),
            packages.join(", ")
        ));
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let sudo = !is_root && Command::new("sudo").args(["-n", "true"]).status().map(|s| s.success()).unwrap_or(false);
    if !is_root && !sudo {
        fail(&format!("missing {}: run `{fix}`, then retry", what.join("; ")));
    }
    eprintln!("xtask: installing {} ({})", packages.join(", "), what.join("; "));
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
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&packages);
    let installed = apt(&["update", "-qq"]) && apt(&install);
    if let Some(still) = missing.iter().find(|n| !(n.present)()) {
        let why = if installed { "installed, but it is still missing" } else { "installing it failed" };
        fail(&format!("{} ({}): {why}; run `{fix}` yourself, then retry", still.what, still.package));
    }
}
