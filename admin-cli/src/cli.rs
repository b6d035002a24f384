//! Command-line shape of castctl.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "castctl",
    version,
    about = "Administer a castmesh cluster over its gRPC API",
    after_help = "Exit codes: 0 ok, 1 other error, 2 usage, 3 cluster unreachable or \
                  unavailable, 4 not found, 5 not authenticated, 6 conflict (already exists, \
                  not allowed in this state), 7 invalid argument."
)]
pub struct Cli {
    /// gRPC endpoint of any node (writes are forwarded to the leader).
    #[arg(
        long,
        global = true,
        env = "CASTCTL_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,
    /// Admin token (the node's cluster.admin_token).
    #[arg(long, global = true, env = "CASTCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the admin token, e.g. DATA_DIR/admin-token of a dev node.
    #[arg(
        long,
        global = true,
        env = "CASTCTL_TOKEN_FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Give up on a call after this long.
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster membership and leadership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Streams: create, list, show, update, rotate keys, end, delete.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Accounts: create, list, change roles, disable, reset passwords, invite.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Leader, term and members as seen by the node at --endpoint.
    Status,
    /// Add a node: as a learner that catches up, then as a voter.
    AddNode {
        /// The new node's cluster.node_id.
        #[arg(long)]
        id: u64,
        /// Its gRPC address as the other nodes reach it (HOST:PORT).
        #[arg(long)]
        grpc: String,
        /// Stop after it caught up as a (non-voting) learner.
        #[arg(long)]
        learner_only: bool,
    },
    /// Remove a node (leadership moves away first if it leads).
    RemoveNode { id: u64 },
    /// Make another voter the leader.
    TransferLeader { id: u64 },
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream; prints its key once.
    Create {
        /// Public id used in the play URL (default: generated).
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Owner: an account's email makes that account the owner; other text is kept
        /// as a label.
        #[arg(long, default_value = "")]
        owner: String,
        /// Scheduled start, RFC 3339 (e.g. 2026-12-01T18:00:00Z).
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        scheduled_at: Option<std::time::SystemTime>,
    },
    /// List streams.
    List {
        /// Only these statuses (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',')]
        status: Vec<Status>,
    },
    /// Show one stream.
    Show { id: String },
    /// Change a stream's title or schedule.
    Update(UpdateArgs),
    /// Replace a stream's key; prints the new key once. The old key stops working.
    RotateKey { id: String },
    /// Stop a stream now: its publisher is dropped and its key refused until `start`.
    End { id: String },
    /// Let a stopped stream's key publish again.
    Start { id: String },
    /// Delete a stream and its key.
    Delete { id: String },
    /// A stream's restream destinations: list (with what each is doing), add, update,
    /// remove, start, stop.
    #[command(subcommand)]
    Destinations(DestinationCommand),
}

#[derive(Debug, Subcommand)]
pub enum DestinationCommand {
    /// The stream's destinations and what each is doing.
    List { stream: String },
    /// Add a destination (enabled unless --disabled: pushed whenever the stream is live).
    Add {
        stream: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = Platform::Custom)]
        platform: Platform,
        /// rtmp:// or rtmps:// server URL without the key (default: the platform's).
        #[arg(long)]
        url: Option<String>,
        /// File holding the destination's stream key ("-": standard input), so that it
        /// is not in the shell history or the process list.
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        disabled: bool,
    },
    /// Change a destination's fields.
    Update {
        stream: String,
        id: u64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        platform: Option<Platform>,
        #[arg(long)]
        url: Option<String>,
        /// A new key, from this file ("-": standard input).
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Remove a destination.
    Remove { stream: String, id: u64 },
    /// Push to it now, until the stream goes live anew.
    Start { stream: String, id: u64 },
    /// Stop pushing to it, until the stream goes live anew.
    Stop { stream: String, id: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Youtube,
    Twitch,
    Facebook,
    Custom,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Self::Youtube => "youtube",
            Self::Twitch => "twitch",
            Self::Facebook => "facebook",
            Self::Custom => "custom",
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Email of the account that is to own the stream ("" leaves it to admins).
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long, value_parser = humantime::parse_rfc3339_weak, conflicts_with = "clear_schedule")]
    pub scheduled_at: Option<std::time::SystemTime>,
    #[arg(long)]
    pub clear_schedule: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Scheduled,
    Live,
    Ended,
    Archived,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserRole {
    /// Manages every stream and user.
    Admin,
    /// Creates and runs their own streams.
    Streamer,
    /// Watches and chats.
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-file a password is generated and printed
    /// once.
    Create {
        #[arg(long)]
        email: String,
        /// Display name (default: the email's part before '@').
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = UserRole::Streamer)]
        role: UserRole,
        /// Read the password from this file ("-": standard input), so it is not in
        /// the shell history or the process list.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List accounts.
    List,
    /// Change an account's role.
    SetRole {
        id: u64,
        #[arg(value_enum)]
        role: UserRole,
    },
    /// Disable an account: its sessions end at once on every node.
    Disable { id: u64 },
    /// Enable a disabled account again.
    Enable { id: u64 },
    /// Set a new password (generated and printed once without --password-file); every
    /// session of the account ends.
    ResetPassword {
        id: u64,
        /// Read the password from this file ("-": standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Make an invitation to sign up (accounts.signup = "invite"); prints its code once.
    Invite {
        #[arg(long, value_enum, default_value_t = UserRole::Streamer)]
        role: UserRole,
    },
}
