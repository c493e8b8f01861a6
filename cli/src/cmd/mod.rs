//! The operator commands (`node`, `sandbox`, `peer`, `port`, `gc`) and `plan`, one file each.
//! Each file owns its clap arguments and a [`Run`] implementation; `main.rs` lists them once.
//! The node commands reopen the node from the `node.json` its last `Node::open` wrote and make
//! the same library call a runtime makes; input is validated before anything is opened where
//! the library lets us.

pub mod agent;
pub mod gc;
pub mod node;
pub mod peer;
pub mod plan;
pub mod port;
pub mod sandbox;
pub mod service;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use podnet::blocking::Node;
use podnet::{Error, ErrorKind, NodeConfig, Result};

use crate::output::{finish, show, EXIT_OK};

/// A command: parsed arguments that run and return the process's exit code.
pub trait Run {
    /// Run the command; errors are printed by the implementation (see `output`).
    fn run(self) -> i32;
}

/// `impl_run!(Args => report(work))`: `Args` runs as `report(work(&args))`, the command's work
/// and how its outcome becomes the exit code (`output::finish` for commands, the benchmarks'
/// `finish` and `worker_finish`).
macro_rules! impl_run {
    ($args:ty => $report:ident($work:ident)) => {
        impl $crate::cmd::Run for $args {
            fn run(self) -> i32 {
                $report($work(&self))
            }
        }
    };
}
pub(crate) use impl_run;

/// A command of a group that talks to one node (`node`, `sandbox`, `peer`, `port`).
pub trait NodeCommand {
    /// Run against the node `t` names; the exit code, or the error to print.
    fn run(self, t: &Target) -> Result<i32>;
}

/// `records_commands! { Cmd(AddArgs) { add: "...", del: "...", name: "...", list: "...", sync: "...",
/// file: "..." } }`: the commands of a set of named records the node keeps (peers, services), with
/// their help texts: `add` one, `del NAME`, `list`, and `sync --file FILE` to make the set exactly
/// the file's. They run as the calling module's `add`, `del`, `list` and `sync` functions.
macro_rules! records_commands {
    ($(#[$doc:meta])* $cmd:ident($args:ty) {
        add: $add:literal,
        del: $del:literal,
        name: $name:literal,
        list: $list:literal,
        sync: $sync:literal,
        file: $file:literal $(,)?
    }) => {
        $(#[$doc])*
        #[derive(clap::Subcommand, Debug)]
        pub enum $cmd {
            #[doc = $add]
            Add($args),
            #[doc = $del]
            #[command(visible_alias = "delete")]
            Del {
                #[doc = $name]
                name: String,
            },
            #[doc = $list]
            #[command(visible_alias = "ls")]
            List,
            #[doc = $sync]
            Sync {
                #[doc = $file]
                #[arg(long, value_name = "FILE")]
                file: std::path::PathBuf,
            },
        }

        impl $crate::cmd::NodeCommand for $cmd {
            fn run(self, t: &$crate::cmd::Target) -> podnet::Result<i32> {
                match self {
                    Self::Add(a) => add(t, a),
                    Self::Del { name } => del(t, &name),
                    Self::List => list(t),
                    Self::Sync { file } => sync(t, &file),
                }
            }
        }
    };
}
pub(crate) use records_commands;

/// `podnet <group> [--node NAME] [--state-dir DIR] [--json] <command> ...`: the node options
/// may go anywhere after the group.
#[derive(Args, Debug)]
pub struct Group<C: Subcommand + NodeCommand> {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    cmd: C,
}

impl<C: Subcommand + NodeCommand> Run for Group<C> {
    fn run(self) -> i32 {
        finish(self.cmd.run(&self.target))
    }
}

/// Which node a command talks to, and how it prints. Global within each command group.
#[derive(Args, Debug, Clone, Default)]
pub struct Target {
    /// Node name [default: $PODNET_NODE, else "default"].
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,
    /// The node's state directory [default: /run/podnet/NAME].
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    /// The node name the user chose (flag, then environment), if any.
    fn chosen_name(&self) -> Option<String> {
        self.node.clone().or_else(|| std::env::var("PODNET_NODE").ok().filter(|s| !s.is_empty()))
    }

    /// The node's name, validated.
    pub fn name(&self) -> Result<String> {
        let n = self.chosen_name().unwrap_or_else(|| "default".into());
        podnet::validate_name(&n, "node name").map_err(|m| Error::invalid("select node", m))?;
        Ok(n)
    }

    /// The node's state dir.
    pub fn dir(&self) -> Result<PathBuf> {
        match &self.state_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(Path::new("/run/podnet").join(self.name()?)),
        }
    }

    /// The config the node was last opened with.
    pub fn load(&self) -> Result<NodeConfig> {
        let dir = self.dir()?;
        let name = self.name()?;
        let mut cfg = NodeConfig::load(&dir).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("open node {name}"),
                    format!(
                        "not initialized ({} does not exist; run `podnet node init --node {name} --pod-cidr CIDR`)",
                        dir.join("node.json").display()
                    ),
                )
            } else {
                e
            }
        })?;
        if let Some(n) = self.chosen_name() {
            if n != cfg.name {
                return Err(Error::invalid(
                    "select node",
                    format!("--node {n} but {} holds node {}", dir.display(), cfg.name),
                ));
            }
        }
        if cfg.effective_state_dir() != dir {
            cfg.state_dir = Some(dir);
        }
        Ok(cfg)
    }

    /// Reopen the node, read a list from it and show it (`--json`, or the table `table` makes).
    pub fn list<T: serde::Serialize>(
        &self,
        get: impl FnOnce(&Node) -> Result<T>,
        table: impl FnOnce(&T) -> String,
    ) -> Result<i32> {
        let (_, node) = self.open()?;
        let items = get(&node)?;
        show(self.json, &items, || table(&items))?;
        Ok(EXIT_OK)
    }

    /// Reopen the node (idempotent init; cheap).
    pub fn open(&self) -> Result<(NodeConfig, Node)> {
        let cfg = self.load()?;
        let node = Node::open(cfg.clone())?;
        Ok((cfg, node))
    }
}

/// A sandbox id fit to be a file name, or `invalid_argument` naming the operation.
pub fn valid_id(id: &str, op: &str) -> Result<()> {
    podnet::validate_name(id, "sandbox id").map_err(|m| Error::invalid(format!("{op} {id:?}"), m))
}

/// Read a file, or stdin for `-`.
pub fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![];
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::new(ErrorKind::Io, format!("read {what} from stdin"), e))?;
    } else {
        buf = std::fs::read(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
            Error::new(kind, format!("read {what} {}", path.display()), e)
        })?;
    }
    Ok(buf)
}
