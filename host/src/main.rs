//! The `neuron-host` binary: parse the command line, build the config, hand
//! off to a job. Nothing else lives here.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use neuron_host::{
    config::{Config, Override},
    gpu::{GpuDevice, GpuOptions},
    jobs::{
        chain, checkpoint as checkpoint_job, hf as hf_job, inspect, plugin_check, rescore, run as run_job,
        train as train_job, wallet as wallet_job,
    },
    logging,
    runtime::{schedule::LrSchedule, scorer_slot::ConfigSource},
    wallet::{Scheme, WalletConfig},
    Result,
};

#[derive(Parser)]
#[command(
    name = "neuron-host",
    version,
    about = "A runtime for Bittensor neurons with models and scoring policies as plugins"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

/// Flags of the main job. Each sets the configuration key named in its
/// help; `--set KEY=VALUE` sets any other.
#[derive(Args, Clone, Default)]
struct RunArgs {
    /// A model plugin shared library (repeatable) [plugins].
    #[arg(long = "plugin", value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// A scoring plugin shared library (repeatable) [scoring].
    #[arg(long = "scoring", value_name = "PATH")]
    scoring: Vec<PathBuf>,
    /// Which loaded scorer to use, by plugin name [scorer].
    #[arg(long, value_name = "NAME")]
    scorer: Option<String>,
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// subnet (a whole local subnet, the default), miner or validator [role].
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Stop after this many validator epochs of this run (a restart runs as many more); 0 runs until Ctrl-C [epochs].
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Subnet id [netuid].
    #[arg(long, value_name = "N")]
    netuid: Option<u16>,
    /// finney, test or local (the embedded chain) [subtensor.network].
    #[arg(long = "subtensor.network", value_name = "NAME")]
    network: Option<String>,
    /// A node's WebSocket URL; wins over --subtensor.network [subtensor.chain_endpoint].
    #[arg(long = "subtensor.chain_endpoint", value_name = "URL")]
    chain_endpoint: Option<String>,
    /// Wallet name [wallet.name].
    #[arg(long = "wallet.name", value_name = "NAME")]
    wallet_name: Option<String>,
    /// Hotkey name [wallet.hotkey].
    #[arg(long = "wallet.hotkey", value_name = "NAME")]
    wallet_hotkey: Option<String>,
    /// Directory holding wallets [wallet.path].
    #[arg(long = "wallet.path", value_name = "DIR")]
    wallet_path: Option<String>,
    /// Port the miner serves on (0: any free port) [axon.port].
    #[arg(long = "axon.port", value_name = "PORT")]
    axon_port: Option<u16>,
    /// Port of Prometheus' /metrics (0: off) [metrics.port].
    #[arg(long = "metrics.port", value_name = "PORT")]
    metrics_port: Option<u16>,
    /// Where the run's logs go [logging.run_dir].
    #[arg(long = "run_dir", value_name = "DIR")]
    run_dir: Option<String>,
    /// text or json log lines on stderr [logging.format].
    #[arg(long = "logging.format", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Checkpoint file (a local subnet: directory) [checkpoint.path].
    #[arg(long = "checkpoint_path", value_name = "PATH")]
    checkpoint_path: Option<String>,
    /// Start fresh instead of resuming from the checkpoint; nothing is deleted [checkpoint.resume = false].
    #[arg(long)]
    no_resume: bool,
    /// Any configuration key, as TOML: --set validator.top_k=32 --set 'data.dataset="corpus.txt"' (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl RunArgs {
    /// The flags as configuration overrides, in the order given above.
    fn overrides(&self) -> Result<Vec<Override>> {
        let mut out = Vec::new();
        let paths = |v: &[PathBuf]| toml::Value::Array(v.iter().map(|p| p.display().to_string().into()).collect());
        if !self.plugins.is_empty() {
            out.push(Override::flag("plugins", "--plugin", paths(&self.plugins)));
        }
        if !self.scoring.is_empty() {
            out.push(Override::flag("scoring", "--scoring", paths(&self.scoring)));
        }
        let strings = [
            ("scorer", "--scorer", &self.scorer),
            ("role", "--role", &self.role),
            ("subtensor.network", "--subtensor.network", &self.network),
            ("subtensor.chain_endpoint", "--subtensor.chain_endpoint", &self.chain_endpoint),
            ("wallet.name", "--wallet.name", &self.wallet_name),
            ("wallet.hotkey", "--wallet.hotkey", &self.wallet_hotkey),
            ("wallet.path", "--wallet.path", &self.wallet_path),
            ("logging.run_dir", "--run_dir", &self.run_dir),
            ("logging.format", "--logging.format", &self.log_format),
            ("checkpoint.path", "--checkpoint_path", &self.checkpoint_path),
        ];
        for (key, flag, value) in strings {
            if let Some(v) = value {
                out.push(Override::flag(key, flag, v.clone()));
            }
        }
        let integers = [
            ("epochs", "--epochs", self.epochs.map(|v| v as i64)),
            ("netuid", "--netuid", self.netuid.map(i64::from)),
            ("axon.port", "--axon.port", self.axon_port.map(i64::from)),
            ("metrics.port", "--metrics.port", self.metrics_port.map(i64::from)),
        ];
        for (key, flag, value) in integers {
            if let Some(v) = value {
                out.push(Override::flag(key, flag, v));
            }
        }
        if self.no_resume {
            out.push(Override::flag("checkpoint.resume", "--no-resume", false));
        }
        for item in &self.set {
            out.push(Override::parse_set(item)?);
        }
        Ok(out)
    }

    fn load(&self) -> Result<neuron_host::config::Loaded> {
        Config::load_layers(self.config.as_deref(), &self.overrides()?)
    }
}

// Parsed once per process: the size of the largest variant (the run flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Show the configuration the main job would run with, and where each value came from.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with plugin files.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// List GPU adapters and show the one neuron-host would pick.
    Gpu,
    /// Render PNG plots and an HTML page of a run directory (into RUN_DIR/report/).
    Report {
        run_dir: PathBuf,
        /// Plot width in pixels.
        #[arg(long, default_value_t = 1200)]
        width: u32,
        /// Plot height in pixels.
        #[arg(long, default_value_t = 700)]
        height: u32,
    },
    /// Look at a subtensor node: metagraph, hyperparameters, blocks.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
        /// finney, test, or local (the embedded chain, which has no node to look at).
        #[arg(long = "subtensor.network", global = true, value_name = "NAME")]
        network: Option<String>,
        /// A node's WebSocket URL (a local node: ws://127.0.0.1:9944); wins over --subtensor.network.
        #[arg(long = "subtensor.chain_endpoint", global = true, value_name = "URL")]
        chain_endpoint: Option<String>,
    },
    /// Replay a validator's record (validator.record.dir) through scoring policies offline and
    /// show, per epoch and uid, the weights each would have set and the incentive they would earn.
    Rescore {
        /// The record directory (seg-NNNNNNNN.nhr files).
        #[arg(long, value_name = "DIR")]
        record: PathBuf,
        /// A scoring plugin library, one column each (repeatable).
        #[arg(long = "scoring", value_name = "PATH", required = true)]
        scoring: Vec<PathBuf>,
        /// A config file whose [plugin.<name>] sections configure the policies (default: the
        /// configuration recorded for a live scorer of the same name, else the plugin's defaults).
        #[arg(long = "scorer-config", value_name = "FILE")]
        scorer_config: Option<PathBuf>,
        /// Replay up to a frame cut short at the end of the record (a validator stopped while writing).
        #[arg(long)]
        allow_partial: bool,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Create and inspect wallets (the Bittensor SDK's layout and keyfiles).
    Wallet {
        #[command(subcommand)]
        command: WalletCommand,
    },
    /// Look at checkpoint files.
    Checkpoint {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Train a model plugin on a dataset without a subnet (the miner's training loop), reporting
    /// train and validation loss.
    Train(TrainArgs),
    /// Mean cross-entropy (nats per token) and perplexity of a model on a dataset.
    Eval(EvalArgs),
    /// Generate text with a model, streaming tokens as they come.
    Sample(SampleArgs),
}

/// The model plugin and how to build it (shared by train, eval and sample).
#[derive(Args)]
struct ModelArgs {
    /// The model plugin shared library.
    #[arg(long = "plugin", value_name = "PATH")]
    plugin: Option<PathBuf>,
    /// Configuration file: its [plugin.<name>], [miner], [data] and [gpu] sections are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The plugin's preset (sets `preset` in its section), e.g. tiny, nano, gpt2 for the GPT plugin.
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// Seed of the model's initial weights (unless its section sets one), of the training and
    /// evaluation batches [default: data.seed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// One JSON object per line on stdout instead of lines for people.
    #[arg(long)]
    json: bool,
}

impl ModelArgs {
    fn source(&self) -> Result<(train_job::ModelSource, Config)> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(p) = &self.plugin {
            config.plugins = vec![p.clone()];
        } else if config.plugins.is_empty() {
            config.plugins = train_job::plugin_paths(None)?;
        }
        let seed = self.seed.unwrap_or(config.data.seed);
        let source =
            train_job::ModelSource { config: config.clone(), preset: self.preset.clone(), seed, section: None };
        Ok((source, config))
    }

    /// The model of `checkpoint` (its saved configuration and weights), or a new one built from
    /// the flags. The seed defaults to the checkpoint's data seed (so `eval --batches` draws the
    /// batches `train` estimated its losses on).
    fn model(&self, checkpoint: Option<&std::path::Path>) -> Result<(train_job::ModelSource, train_job::BuiltModel)> {
        let Some(path) = checkpoint else {
            let (source, _) = self.source()?;
            let built = source.build()?;
            return Ok((source, built));
        };
        if self.preset.is_some() {
            return Err(neuron_host::Error::Config(
                "--preset does not go with --checkpoint: the model is built with the configuration saved in the checkpoint".into(),
            ));
        }
        let mut saved = train_job::read_checkpoint(path)?;
        let mut config = Config::load(self.config.as_deref())?;
        config.plugins = match &self.plugin {
            Some(p) => vec![p.clone()],
            None => vec![train_job::plugin_beside_executable(&saved.plugin.name)?],
        };
        let seed = self.seed.unwrap_or(saved.data.sampler.seed);
        let source = train_job::ModelSource { config, preset: None, seed, section: Some(saved.plugin.config.clone()) };
        let built = train_job::restore_model(&mut saved, path, &source)?;
        Ok((source, built))
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// `builtin` (the generated corpus), a text file, or a nanoGPT uint16 token file (.bin) [default: data.dataset].
    #[arg(long, value_name = "PATH")]
    dataset: Option<String>,
    /// Validate on this file instead of splitting the dataset.
    #[arg(long, value_name = "PATH")]
    val_dataset: Option<String>,
    /// Share of the dataset, at its end, held out for validation.
    #[arg(long, default_value_t = 0.1, value_name = "F")]
    val_fraction: f64,
    /// Train up to this global step.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    steps: u64,
    /// Sequences per batch [default: miner.batch_size].
    #[arg(long, value_name = "B")]
    batch_size: Option<u32>,
    /// Tokens per sequence [default: the model's context].
    #[arg(long, value_name = "T")]
    seq_len: Option<u32>,
    /// Peak learning rate [default: miner.lr].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Learning rate at the end of the decay [default: lr / 10].
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    min_lr: Option<f64>,
    /// Steps of linear warm-up [default: miner.warmup_steps].
    #[arg(long, value_name = "N")]
    warmup: Option<u64>,
    /// cosine (to min-lr at the last step) or none (constant after warm-up).
    #[arg(long, default_value = "cosine", value_name = "KIND")]
    lr_decay: String,
    /// Estimate train and validation loss every this many steps (0: at the start and the end only).
    #[arg(long, default_value_t = 100, value_name = "K")]
    eval_every: u64,
    /// Batches per loss estimate.
    #[arg(long, default_value_t = 20, value_name = "M")]
    eval_batches: u32,
    /// Print a training line every this many steps when stdout is not a terminal (0: never).
    #[arg(long, default_value_t = 10, value_name = "N")]
    log_every: u64,
    /// Checkpoint file (a miner's checkpoint, PyTorch .pth): resumed from when it exists, saved
    /// every --save-every steps, at the end and when interrupted.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Steps between checkpoint saves (0: only at the end) [default: checkpoint.miner_every_steps].
    #[arg(long, value_name = "N")]
    save_every: Option<u64>,
    /// Start fresh even when the checkpoint exists (it is replaced at the first save).
    #[arg(long)]
    no_resume: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A checkpoint written by `train` or a miner: the model is built with its saved configuration
    /// and weights (the plugin is looked for beside the executable unless --plugin is given).
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// `builtin`, a text file, or a nanoGPT uint16 token file (.bin) [default: data.dataset].
    #[arg(long, value_name = "PATH")]
    dataset: Option<String>,
    /// Evaluate only the last F of the dataset (the validation part `train --val-fraction F` held out).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    val_fraction: f64,
    /// Average over this many sampled batches (the ones `train --eval-batches M` uses) instead of every token.
    #[arg(long, value_name = "M")]
    batches: Option<u32>,
    /// Sequences per batch [default: miner.batch_size].
    #[arg(long, value_name = "B")]
    batch_size: Option<u32>,
    /// Tokens per sequence [default: the model's context].
    #[arg(long, value_name = "T")]
    seq_len: Option<u32>,
}

#[derive(Args)]
struct SampleArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A checkpoint written by `train` or a miner: the model is built with its saved configuration
    /// and weights (the plugin is looked for beside the executable unless --plugin is given).
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Text to continue.
    #[arg(long, default_value = "\n", value_name = "TEXT")]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 200, value_name = "N")]
    tokens: u32,
    /// Softmax temperature; 0 always takes the most likely token.
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    temperature: f64,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    top_k: Option<u32>,
}

#[derive(Subcommand)]
enum CheckpointCommand {
    /// Print what a checkpoint holds (role, plugin, step, keys with dtypes and shapes);
    /// exit non-zero with one line when the file is damaged or not a checkpoint.
    Inspect { path: PathBuf },
    /// Import GPT-2 weights in Hugging Face's layout (a directory with model.safetensors and
    /// config.json, as save_pretrained writes them, or the .safetensors file) into a miner
    /// checkpoint at step 0, built through the model plugin with the shape of config.json.
    ImportHf {
        /// The directory, or the .safetensors file (config.json beside it).
        src: PathBuf,
        /// The model plugin (the GPT plugin, libgpt.so).
        #[arg(long = "plugin", value_name = "PATH")]
        plugin: Option<PathBuf>,
        /// Configuration file: the plugin's optimizer keys, [miner] schedule, [data] seed and [gpu].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The checkpoint to write (never replaced: an existing file is refused).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Export the GPT-2 model of a miner's checkpoint (or a validator's own) in Hugging Face's layout: DIR/model.safetensors
    /// and DIR/config.json, which transformers' GPT2LMHeadModel.from_pretrained(DIR) loads.
    ExportHf {
        checkpoint: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Every key with its value and its source (default, file, environment or flag).
    Show {
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Subcommand)]
enum ChainCommand {
    /// The subnet's neurons, one a row.
    Metagraph {
        #[arg(long, default_value_t = 1)]
        netuid: u16,
        /// Which mechanism's weights, incentives and emissions: a number, or `all` for each in turn.
        #[arg(long, default_value = "0", value_parser = parse_mechanism)]
        mechanism: MechanismArg,
    },
    /// The subnet's hyperparameters.
    Hyperparams {
        #[arg(long, default_value_t = 1)]
        netuid: u16,
    },
    /// The finalized block, and with --netuid where that subnet stands in its epoch.
    Block {
        #[arg(long)]
        netuid: Option<u16>,
    },
}

/// `--mechanism N|all`: one mechanism, or every one (`None`).
#[derive(Clone, Copy, Debug)]
struct MechanismArg(Option<u8>);

fn parse_mechanism(text: &str) -> std::result::Result<MechanismArg, String> {
    if text == "all" {
        return Ok(MechanismArg(None));
    }
    text.parse::<u8>()
        .map(|m| MechanismArg(Some(m)))
        .map_err(|_| format!("`{text}` is not a mechanism: give a number from 0 to 255, or `all`"))
}

/// Which wallet, as the Bittensor CLI names the flags.
#[derive(Args)]
struct WalletFlags {
    /// Wallet name (default `default`).
    #[arg(long = "wallet.name", value_name = "NAME")]
    name: Option<String>,
    /// Hotkey name (default `default`).
    #[arg(long = "wallet.hotkey", value_name = "NAME")]
    hotkey: Option<String>,
    /// Directory holding wallets (default ~/.bittensor/wallets).
    #[arg(long = "wallet.path", value_name = "DIR")]
    path: Option<PathBuf>,
    /// Configuration file whose [wallet] section is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl WalletFlags {
    fn resolve(self) -> Result<WalletConfig> {
        let mut wallet = Config::load(self.config.as_deref())?.wallet_config();
        wallet.merge(WalletConfig { name: self.name, hotkey: self.hotkey, path: self.path });
        Ok(wallet)
    }
}

#[derive(Subcommand)]
enum WalletCommand {
    /// Create a coldkey (unless the wallet has one) and a hotkey. The coldkey is encrypted with a
    /// password from NEURON_WALLET_PASSWORD or the terminal.
    New {
        #[command(flatten)]
        wallet: WalletFlags,
        /// Words in each new phrase (12, 15, 18, 21 or 24).
        #[arg(long, default_value_t = 12)]
        words: usize,
        /// Leave the coldkey unencrypted.
        #[arg(long)]
        no_password: bool,
        /// Encrypt the hotkey too (the neuron then needs the password to start).
        #[arg(long)]
        encrypt_hotkey: bool,
        /// Replace existing keyfiles.
        #[arg(long)]
        overwrite: bool,
        /// Make ed25519 keys instead of sr25519.
        #[arg(long)]
        ed25519: bool,
    },
    /// Show a wallet's coldkey and hotkey addresses (unlocks nothing).
    Show {
        #[command(flatten)]
        wallet: WalletFlags,
    },
    /// List the wallets and hotkeys under the wallet directory.
    List {
        #[command(flatten)]
        wallet: WalletFlags,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print what a plugin declares and check that it builds; exit non-zero with the reason if it cannot load.
    Inspect {
        path: PathBuf,
        /// Configuration file whose [plugin.<name>] section is used.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Only read the declaration; do not open the GPU or build the model/scorer.
        #[arg(long)]
        no_instantiate: bool,
    },
    /// Run the plugin conformance suite (the test kit's) on each plugin: loading, forward and loss
    /// against CPU references, refusals without panics, gradients against finite differences,
    /// overfitting a tiny batch, state round trips, determinism; scorers' ranking. Exits non-zero
    /// when a check fails.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Configuration file whose [plugin.<name>] sections are used (keep models small).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Steps a model gets to halve its loss on a tiny batch.
        #[arg(long, default_value_t = 40)]
        steps: u32,
        /// Learning rate for those steps (Adam-scale by default; plain SGD wants more).
        #[arg(long, default_value_t = 0.01)]
        lr: f32,
        /// The plugin does not promise identical results from one configuration.
        #[arg(long)]
        nondeterministic: bool,
    },
}

fn main() -> ExitCode {
    quiet_headless_display_probe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Mesa's Vulkan drivers probe for a Wayland display when they start and, on a
/// headless machine without `XDG_RUNTIME_DIR`, print an error line per probe.
/// A set (even absent) directory keeps them quiet; no display is ever used.
/// Runs first thing in `main`, while the process has a single thread.
fn quiet_headless_display_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir().join("neuron-host-no-display"));
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.command.is_some() {
        logging::init();
    }
    match cli.command {
        Some(Command::Plugin { command: PluginCommand::Inspect { path, config, no_instantiate } }) => {
            let config = Config::load(config.as_deref())?;
            inspect::inspect(&path, &config, !no_instantiate)
        }
        Some(Command::Checkpoint { command: CheckpointCommand::Inspect { path } }) => checkpoint_job::inspect(&path),
        Some(Command::Checkpoint { command: CheckpointCommand::ImportHf { src, plugin, config, out } }) => {
            let mut config = Config::load(config.as_deref())?;
            config.plugins = train_job::plugin_paths(plugin)?;
            let seed = config.data.seed;
            let done = hf_job::import_hf(&src, &out, &config, seed)?;
            println!(
                "imported {} tensors ({:.1}M parameters) from {} into {}",
                done.tensors,
                done.parameters as f64 / 1e6,
                src.display(),
                out.display()
            );
            println!("a miner resumes from it with this model configuration (its [plugin.<name>] section):");
            print!("{}", done.section);
            Ok(())
        }
        Some(Command::Checkpoint { command: CheckpointCommand::ExportHf { checkpoint, out } }) => {
            let done = hf_job::export_hf(&checkpoint, &out)?;
            println!(
                "wrote {} tensors to {} and {}; load them with GPT2LMHeadModel.from_pretrained(\"{}\")",
                done.tensors,
                out.join("model.safetensors").display(),
                out.join("config.json").display(),
                out.display()
            );
            if done.tokenizer_files.is_empty() {
                println!("no tokenizer files: this model reads bytes (token ids are the text's UTF-8 bytes, 0-255)");
            } else {
                println!(
                    "wrote GPT-2's tokenizer beside it ({}): AutoTokenizer.from_pretrained(\"{}\") and vLLM find it there",
                    done.tokenizer_files.join(", "),
                    out.display()
                );
            }
            Ok(())
        }
        Some(Command::Report { run_dir, width, height }) => {
            let out = neuron_host::report::render(&run_dir, neuron_host::report::Size { width, height })?;
            for img in &out.images {
                println!("wrote {}", img.display());
            }
            println!("wrote {}", out.html.display());
            Ok(())
        }
        Some(Command::Wallet { command }) => match command {
            WalletCommand::New { wallet, words, no_password, encrypt_hotkey, overwrite, ed25519 } => {
                let options = wallet_job::NewOptions {
                    words,
                    encrypt_coldkey: !no_password,
                    encrypt_hotkey,
                    overwrite,
                    scheme: if ed25519 { Scheme::Ed25519 } else { Scheme::Sr25519 },
                };
                wallet_job::new(&wallet.resolve()?, &options)
            }
            WalletCommand::Show { wallet } => wallet_job::show(&wallet.resolve()?),
            WalletCommand::List { wallet } => wallet_job::list(&wallet.resolve()?),
        },
        Some(Command::Rescore { record, scoring, scorer_config, allow_partial, json }) => {
            rescore::run(&rescore::RescoreOptions { record, scoring, scorer_config, allow_partial, json })
        }
        Some(Command::Gpu) => {
            let options = GpuOptions::from_env();
            for line in GpuDevice::list_adapters(&options) {
                println!("adapter  {line}");
            }
            let gpu = GpuDevice::open(&options, &[])?;
            println!("selected {}", gpu.describe());
            Ok(())
        }
        Some(Command::Chain { command, network, chain_endpoint }) => {
            let view = match command {
                ChainCommand::Metagraph { netuid, mechanism } => {
                    chain::ChainView::Metagraph { netuid, mechanism: mechanism.0 }
                }
                ChainCommand::Hyperparams { netuid } => chain::ChainView::Hyperparams { netuid },
                ChainCommand::Block { netuid } => chain::ChainView::Block { netuid },
            };
            chain::run(network.as_deref(), chain_endpoint.as_deref(), view)
        }
        Some(Command::Plugin { command: PluginCommand::Check { paths, config, steps, lr, nondeterministic } }) => {
            let mut config = Config::load(config.as_deref())?;
            config.plugins = paths;
            plugin_check::run(&config, &plugin_check::CheckOptions { steps, learning_rate: lr, nondeterministic })
        }
        Some(Command::Train(args)) => {
            let (source, config) = args.model.source()?;
            let schedule = LrSchedule {
                lr: args.lr.unwrap_or(config.miner.lr),
                min_lr: args.min_lr.unwrap_or(args.lr.unwrap_or(config.miner.lr) / 10.0),
                warmup_steps: train_job::warmup_for(args.warmup, config.miner.warmup_steps, args.steps)?,
                decay_steps: match args.lr_decay.as_str() {
                    "cosine" => args.steps,
                    "none" => 0,
                    other => {
                        return Err(neuron_host::Error::Config(format!(
                            "--lr-decay `{other}` is not known; use cosine or none"
                        )))
                    }
                },
            };
            let options = train_job::TrainOptions {
                dataset: args.dataset.unwrap_or_else(|| config.data.dataset.clone()),
                val_dataset: args.val_dataset,
                val_fraction: args.val_fraction,
                steps: args.steps,
                batch_size: args.batch_size.unwrap_or(config.miner.batch_size),
                sequence_length: args.seq_len,
                schedule,
                eval_every: args.eval_every,
                eval_batches: args.eval_batches,
                log_every: args.log_every,
                checkpoint: args.checkpoint,
                save_every: args.save_every.unwrap_or(config.checkpoint.miner_every_steps),
                keep: config.checkpoint.keep,
                resume: !args.no_resume,
            };
            let mut out = train_job::Output::new(args.model.json);
            train_job::train(&source, &options, &mut out).map(|_| ())
        }
        Some(Command::Eval(args)) => {
            let (source, mut model) = args.model.model(args.checkpoint.as_deref())?;
            let config = source.config.clone();
            let options = train_job::EvalOptions {
                dataset: args.dataset.unwrap_or_else(|| config.data.dataset.clone()),
                val_fraction: args.val_fraction,
                batches: args.batches,
                batch_size: args.batch_size.unwrap_or(config.miner.batch_size),
                sequence_length: args.seq_len,
            };
            let mut out = train_job::Output::new(args.model.json);
            train_job::eval(&mut model, &source, &options, &mut out).map(|_| ())
        }
        Some(Command::Sample(args)) => {
            let (source, mut model) = args.model.model(args.checkpoint.as_deref())?;
            let options = train_job::SampleOptions {
                prompt: args.prompt.replace("\\n", "\n"),
                tokens: args.tokens,
                temperature: args.temperature,
                top_k: args.top_k,
                seed: source.seed,
            };
            let mut out = train_job::Output::new(args.model.json);
            train_job::sample(&mut model, &options, &mut out).map(|_| ())
        }
        Some(Command::Config { command: ConfigCommand::Show { run } }) => {
            print!("{}", run.load()?.show());
            Ok(())
        }
        None => {
            let loaded = cli.run.load()?;
            logging::init_with_format(loaded.config.logging.format);
            let source = ConfigSource { file: cli.run.config.clone(), flags: cli.run.overrides()? };
            run_job::run(loaded.config, source)
        }
    }
}
