//! `castctl`: administer a castmesh cluster over its gRPC API.
//!
//! Exit codes are part of the interface (scripts rely on them); see [`exit_code`].

mod cli;
mod output;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::cluster_admin_client::ClusterAdminClient;
use castmesh_proto::admin::v1::stream_admin_client::StreamAdminClient;
use castmesh_proto::admin::v1::user_admin_client::UserAdminClient;
use clap::{CommandFactory, Parser};
use cli::{
    Cli, ClusterCommand, Command, DestinationCommand, Output, Status, StreamCommand, UserCommand,
    UserRole,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

/// `stream list` of a large cluster exceeds tonic's 4 MiB default (~150 bytes a stream).
const MAX_REPLY_BYTES: usize = 512 * 1024 * 1024;

/// What went wrong, and the exit code scripts see.
struct Failure {
    code: u8,
    message: String,
}

fn exit_code(code: Code) -> u8 {
    match code {
        // Cancelled: tonic's answer when --timeout runs out.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => 3,
        Code::NotFound => 4,
        Code::Unauthenticated | Code::PermissionDenied => 5,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => 6,
        Code::InvalidArgument | Code::OutOfRange => 7,
        _ => 1,
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        let message = if s.code() == Code::Unauthenticated {
            format!(
                "{} (pass --token, --token-file or CASTCTL_TOKEN)",
                s.message()
            )
        } else {
            s.message().to_string()
        };
        Failure {
            code: exit_code(s.code()),
            message,
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Client {
    channel: Channel,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Client {
    async fn connect(cli: &Cli) -> Result<Client, Failure> {
        let token = match (&cli.token, &cli.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| Failure {
                        code: 1,
                        message: format!("cannot read token file {}: {e}", path.display()),
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let token = token
            .map(|t| {
                format!("Bearer {t}").parse().map_err(|_| Failure {
                    code: 7,
                    message: "the token must be printable ASCII".into(),
                })
            })
            .transpose()?;
        let endpoint = Endpoint::from_shared(cli.endpoint.clone())
            .map_err(|e| Failure {
                code: 7,
                message: format!("invalid endpoint {:?}: {e}", cli.endpoint),
            })?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(cli.timeout);
        let channel = endpoint.connect().await.map_err(|e| Failure {
            code: 3,
            message: format!("cannot reach {}: {e}", cli.endpoint),
        })?;
        Ok(Client { channel, token })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.clone());
        }
        r
    }

    fn cluster(&self) -> ClusterAdminClient<Channel> {
        ClusterAdminClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn streams(&self) -> StreamAdminClient<Channel> {
        StreamAdminClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY_BYTES)
    }

    fn users(&self) -> UserAdminClient<Channel> {
        UserAdminClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY_BYTES)
    }
}

fn print(output: Output, json: serde_json::Value, text: String) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Output::Table => print!("{text}"),
    }
}

fn status_pb(s: Status) -> i32 {
    (match s {
        Status::Scheduled => pb::StreamStatus::Scheduled,
        Status::Live => pb::StreamStatus::Live,
        Status::Ended => pb::StreamStatus::Ended,
        Status::Archived => pb::StreamStatus::Archived,
        Status::Cancelled => pb::StreamStatus::Cancelled,
    }) as i32
}

async fn cluster(cli: &Cli, c: &Client, cmd: &ClusterCommand) -> Result<(), Failure> {
    let mut admin = c.cluster();
    let status = match cmd {
        ClusterCommand::Status => admin.status(c.request(pb::StatusRequest {})).await?,
        ClusterCommand::AddNode {
            id,
            grpc,
            learner_only,
        } => {
            admin
                .add_node(c.request(pb::AddNodeRequest {
                    id: *id,
                    grpc_address: grpc.clone(),
                    learner_only: *learner_only,
                }))
                .await?
        }
        ClusterCommand::RemoveNode { id } => {
            admin
                .remove_node(c.request(pb::RemoveNodeRequest { id: *id }))
                .await?
        }
        ClusterCommand::TransferLeader { id } => {
            admin
                .transfer_leader(c.request(pb::TransferLeaderRequest { to: *id }))
                .await?
        }
    }
    .into_inner();
    print(
        cli.output,
        output::status_json(&status),
        output::status_text(&status),
    );
    Ok(())
}

async fn stream(cli: &Cli, c: &Client, cmd: &StreamCommand) -> Result<(), Failure> {
    let mut admin = c.streams();
    let one = |s: pb::Stream| {
        print(
            cli.output,
            output::stream_json(&s),
            output::stream_details(&s),
        );
    };
    let created = |s: pb::CreatedStream| {
        print(
            cli.output,
            output::created_json(&s),
            output::created_text(&s),
        );
    };
    match cmd {
        StreamCommand::Create {
            id,
            title,
            description,
            owner,
            scheduled_at,
        } => created(
            admin
                .create_stream(c.request(pb::CreateStreamRequest {
                    id: id.clone().unwrap_or_default(),
                    title: title.clone(),
                    owner: owner.clone(),
                    scheduled_at_ms: scheduled_at.map(millis),
                    description: description.clone(),
                }))
                .await?
                .into_inner(),
        ),
        StreamCommand::List { status } => {
            let list = admin
                .list_streams(c.request(pb::ListStreamsRequest {
                    status: status.iter().map(|s| status_pb(*s)).collect(),
                }))
                .await?
                .into_inner();
            print(
                cli.output,
                serde_json::Value::Array(list.streams.iter().map(output::stream_json).collect()),
                output::streams_table(&list.streams),
            );
        }
        StreamCommand::Show { id } => one(admin
            .get_stream(c.request(pb::GetStreamRequest { id: id.clone() }))
            .await?
            .into_inner()),
        StreamCommand::Update(u) => one(admin
            .update_stream(c.request(pb::UpdateStreamRequest {
                id: u.id.clone(),
                title: u.title.clone(),
                scheduled_at_ms: u.scheduled_at.map(millis),
                clear_schedule: u.clear_schedule,
                description: u.description.clone(),
                owner_email: u.owner.clone(),
            }))
            .await?
            .into_inner()),
        StreamCommand::RotateKey { id } => created(
            admin
                .rotate_key(c.request(pb::RotateKeyRequest { id: id.clone() }))
                .await?
                .into_inner(),
        ),
        StreamCommand::End { id } => one(admin
            .end_stream(c.request(pb::EndStreamRequest { id: id.clone() }))
            .await?
            .into_inner()),
        StreamCommand::Start { id } => one(admin
            .start_stream(c.request(pb::StartStreamRequest { id: id.clone() }))
            .await?
            .into_inner()),
        StreamCommand::Delete { id } => {
            admin
                .delete_stream(c.request(pb::DeleteStreamRequest { id: id.clone() }))
                .await?;
            print(
                cli.output,
                serde_json::json!({ "deleted": id }),
                format!("stream {id} deleted\n"),
            );
        }
        StreamCommand::Destinations(cmd) => destinations(cli, c, cmd).await?,
    }
    Ok(())
}

async fn destinations(cli: &Cli, c: &Client, cmd: &DestinationCommand) -> Result<(), Failure> {
    let mut admin = c.streams();
    let one = |d: pb::Destination| {
        print(
            cli.output,
            output::destination_json(&d),
            output::destinations_table(&[d]),
        );
    };
    match cmd {
        DestinationCommand::List { stream } => {
            let list = admin
                .list_destinations(c.request(pb::ListDestinationsRequest {
                    stream: stream.clone(),
                }))
                .await?
                .into_inner();
            print(
                cli.output,
                serde_json::Value::Array(
                    list.destinations
                        .iter()
                        .map(output::destination_json)
                        .collect(),
                ),
                output::destinations_table(&list.destinations),
            );
        }
        DestinationCommand::Add {
            stream,
            name,
            platform,
            url,
            key_file,
            disabled,
        } => one(admin
            .add_destination(c.request(pb::AddDestinationRequest {
                stream: stream.clone(),
                name: name.clone(),
                platform: platform.name().into(),
                server_url: url.clone(),
                key: read_secret(key_file, "the destination key")?,
                enabled: !disabled,
            }))
            .await?
            .into_inner()),
        DestinationCommand::Update {
            stream,
            id,
            name,
            platform,
            url,
            key_file,
            enabled,
        } => one(admin
            .update_destination(
                c.request(pb::UpdateDestinationRequest {
                    stream: stream.clone(),
                    id: *id,
                    name: name.clone(),
                    platform: platform.map(|p| p.name().into()),
                    server_url: url.clone(),
                    key: key_file
                        .as_deref()
                        .map(|f| read_secret(f, "the destination key"))
                        .transpose()?,
                    enabled: *enabled,
                }),
            )
            .await?
            .into_inner()),
        DestinationCommand::Remove { stream, id } => {
            admin
                .remove_destination(c.request(pb::RemoveDestinationRequest {
                    stream: stream.clone(),
                    id: *id,
                }))
                .await?;
            print(
                cli.output,
                serde_json::json!({ "removed": id }),
                format!("destination {id} of {stream} removed\n"),
            );
        }
        DestinationCommand::Start { stream, id } | DestinationCommand::Stop { stream, id } => {
            let running = matches!(cmd, DestinationCommand::Start { .. });
            one(admin
                .run_destination(c.request(pb::RunDestinationRequest {
                    stream: stream.clone(),
                    id: *id,
                    running,
                }))
                .await?
                .into_inner())
        }
    }
    Ok(())
}

fn role_pb(r: UserRole) -> i32 {
    (match r {
        UserRole::Admin => pb::UserRole::Admin,
        UserRole::Streamer => pb::UserRole::Streamer,
        UserRole::Viewer => pb::UserRole::Viewer,
    }) as i32
}

/// A secret (`what`) from a file or standard input ("-"): its first line.
fn read_secret(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| Failure {
        code: 1,
        message: format!("cannot read {what} from {}: {e}", path.display()),
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

async fn user(cli: &Cli, c: &Client, cmd: &UserCommand) -> Result<(), Failure> {
    let mut admin = c.users();
    let one = |u: pb::User| print(cli.output, output::user_json(&u), output::user_details(&u));
    match cmd {
        UserCommand::Create {
            email,
            name,
            role,
            password_file,
        } => {
            let password = password_file
                .as_deref()
                .map(|f| read_secret(f, "the password"))
                .transpose()?;
            let created = admin
                .create_user(c.request(pb::CreateUserRequest {
                    email: email.clone(),
                    display_name: name.clone().unwrap_or_default(),
                    role: role_pb(*role),
                    password,
                }))
                .await?
                .into_inner();
            print(
                cli.output,
                output::created_user_json(&created),
                output::created_user_text(&created),
            );
        }
        UserCommand::List => {
            let list = admin
                .list_users(c.request(pb::ListUsersRequest {}))
                .await?
                .into_inner();
            print(
                cli.output,
                serde_json::Value::Array(list.users.iter().map(output::user_json).collect()),
                output::users_table(&list.users),
            );
        }
        UserCommand::SetRole { id, role } => one(admin
            .set_role(c.request(pb::SetRoleRequest {
                id: *id,
                role: role_pb(*role),
            }))
            .await?
            .into_inner()),
        UserCommand::Disable { id } | UserCommand::Enable { id } => one(admin
            .set_disabled(c.request(pb::SetDisabledRequest {
                id: *id,
                disabled: matches!(cmd, UserCommand::Disable { .. }),
            }))
            .await?
            .into_inner()),
        UserCommand::ResetPassword { id, password_file } => {
            let password = password_file
                .as_deref()
                .map(|f| read_secret(f, "the password"))
                .transpose()?;
            let reply = admin
                .reset_password(c.request(pb::ResetPasswordRequest { id: *id, password }))
                .await?
                .into_inner();
            let text = match &reply.password {
                Some(p) => {
                    format!("password of user {id} reset; every session ended\npassword: {p}\n")
                }
                None => format!("password of user {id} set; every session ended\n"),
            };
            print(
                cli.output,
                serde_json::json!({ "id": id, "password": reply.password }),
                text,
            );
        }
        UserCommand::Invite { role } => {
            let invite = admin
                .create_invite(c.request(pb::CreateInviteRequest {
                    role: role_pb(*role),
                }))
                .await?
                .into_inner();
            print(
                cli.output,
                output::invite_json(&invite),
                output::invite_text(&invite),
            );
        }
    }
    Ok(())
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "castctl",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    let client = Client::connect(cli).await?;
    match &cli.command {
        Command::Cluster(cmd) => cluster(cli, &client, cmd).await,
        Command::Stream(cmd) => stream(cli, &client, cmd).await,
        Command::User(cmd) => user(cli, &client, cmd).await,
        Command::Completions { .. } => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("castctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("castctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
