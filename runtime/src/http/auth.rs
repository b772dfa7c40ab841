//! The admin token: where it comes from, the bearer check on requests, and
//! the loopback `Host` check.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;
use crate::error::Error;

/// The environment variable holding the admin token; it takes precedence
/// over `node.admin_token_file`.
pub const TOKEN_ENV: &str = "MOLT_ADMIN_TOKEN";

/// The shortest admin token accepted, in bytes.
pub(crate) const MIN_TOKEN_BYTES: usize = 32;

/// How to make a good token, for the errors that refuse a bad one.
const MAKE_ONE: &str = "make one with `head -c 32 /dev/urandom | base64`";

/// The admin token from the `MOLT_ADMIN_TOKEN` environment variable, else
/// from `file` (its content, trimmed); `None` when neither is set (an empty
/// variable counts as unset).
///
/// The file must be a regular file readable by its owner only (mode 0600
/// or 0400): a token file that group or others can read is refused, as is
/// a FIFO (never read).
///
/// # Errors
/// [`Error::Config`] when the file cannot be read, is not a regular file,
/// is readable by group or others, or is empty; or the token is shorter
/// than `MIN_TOKEN_BYTES` or not printable ASCII without spaces.
pub fn token_from_env_or_file(file: Option<&Path>) -> Result<Option<String>, Error> {
    match std::env::var(TOKEN_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let token = v.trim().to_string();
            check_token_text(&token, TOKEN_ENV)?;
            return Ok(Some(token));
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Error::Config(format!("{TOKEN_ENV} is not valid UTF-8")))
        }
    }
    let Some(file) = file else { return Ok(None) };
    let what = format!("the admin token file {}", file.display());
    let text = crate::regular_file::read_private(file)
        .map_err(|e| Error::Config(e.describe(&what, file)))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::Config(format!("{what} is empty: {MAKE_ONE}")));
    }
    check_token_text(token, &what)?;
    Ok(Some(token.to_string()))
}

/// Where a loopback admin server on `addr` writes the token it generates
/// when none is configured, and where the local client looks for it:
/// `$XDG_RUNTIME_DIR/molt/admin-IP-PORT.token`, else
/// `$HOME/.molt/admin-IP-PORT.token`. `None` when neither variable is set.
pub fn local_token_path(addr: SocketAddr) -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = var("XDG_RUNTIME_DIR")
        .map(|d| PathBuf::from(d).join("molt"))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".molt")))?;
    Some(dir.join(format!("admin-{}-{}.token", addr.ip(), addr.port())))
}

/// A token must fit in a header (printable ASCII, no spaces) and be hard
/// to guess (at least [`MIN_TOKEN_BYTES`] bytes).
pub(crate) fn check_token_text(token: &str, what: &str) -> Result<(), Error> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "{what}: an admin token must be printable ASCII without spaces; {MAKE_ONE}"
        )));
    }
    if token.len() < MIN_TOKEN_BYTES {
        return Err(Error::Config(format!(
            "{what}: the admin token is {} bytes long, shorter than the {MIN_TOKEN_BYTES} \
             bytes needed; {MAKE_ONE}",
            token.len()
        )));
    }
    Ok(())
}

/// 32 random bytes, hex.
pub(crate) fn generate_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Config(format!("cannot generate an admin token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path`, readable and writable by the current user
/// only, in a folder only the current user can enter.
///
/// Never follows a symlink there: the folder is created with mode 0700 if
/// it is missing; an existing one must be a real folder (not a symlink),
/// owned by the current user and closed to group and others, or it is
/// refused, named (its mode is never changed). The file is created anew
/// and exclusively (a leftover is removed first), mode 0600.
pub(crate) fn write_private(path: &Path, token: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        Error::Config(format!(
            "cannot write the admin token file {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    // A new file, so its mode is ours (not a leftover's).
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    // create_new: O_CREAT|O_EXCL, which fails on a symlink too.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(fail)
}

/// Makes sure `dir` is a folder only the current user can use: creates it
/// (mode 0700, its parents as usual) when missing, else checks it without
/// following a symlink.
fn private_dir(dir: &Path) -> Result<(), Error> {
    let refuse = |why: String| {
        Error::Config(format!(
            "the admin token folder {} {why}; the token is not written there \
             (remove it, or set {TOKEN_ENV} or node.admin_token_file)",
            dir.display()
        ))
    };
    let io_fail = |e: std::io::Error| {
        Error::Config(format!(
            "cannot create the admin token folder {}: {e}",
            dir.display()
        ))
    };
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io_fail)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_fail(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_fail)?;
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(refuse(format!(
            "is not a folder ({})",
            crate::regular_file::describe(&meta.file_type())
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(refuse(format!(
                "belongs to another user (uid {}, not {me})",
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "can be used by group or others (mode {:o}; it must be 700)",
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// The token requests are checked against.
#[derive(Clone)]
pub(crate) struct Auth {
    token: Option<Arc<str>>,
}

impl Auth {
    pub(crate) fn new(token: Option<String>) -> Self {
        Auth {
            token: token.map(Arc::from),
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(expected) = &self.token else {
            return Err(Denied::NoToken);
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            });
        match given {
            Some(token) if same(token.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(Denied::Wrong),
            None => Err(Denied::Missing),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    /// The server has no token: it takes no changes (403).
    NoToken,
    /// No bearer token in the request (401).
    Missing,
    /// Not the server's token (401).
    Wrong,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let error = match self {
            Denied::NoToken => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "no_admin_token",
                    format!(
                        "this admin server has no token, so it takes no changes: \
                         set {TOKEN_ENV} or node.admin_token_file"
                    ),
                )
                .into_response()
            }
            Denied::Missing => {
                "this endpoint needs the admin token: send `Authorization: Bearer <token>`"
            }
            Denied::Wrong => "wrong bearer token",
        };
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error).into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

/// Equality that takes the same time wherever the first difference is
/// (`subtle`'s constant-time comparison; only the length may show).
fn same(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Middleware: the request must carry the admin token.
pub(crate) async fn require_token(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    match auth.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(denied) => denied.into_response(),
    }
}

/// Middleware of a loopback server: the `Host` must name a loopback address
/// (`localhost`, `127.0.0.1`, `[::1]`, ...), so that a web page cannot
/// reach the server through a DNS name rebound to 127.0.0.1.
pub(crate) async fn loopback_host(req: Request, next: Next) -> Response {
    if let Some(host) = req.headers().get(HOST) {
        let ok = host.to_str().map(is_loopback_host).unwrap_or(false);
        if !ok {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_host",
                format!(
                    "Host {:?} is not a loopback name; this admin server listens on loopback only",
                    String::from_utf8_lossy(host.as_bytes())
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:7878",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:7878",
            "127.1.2.3:80",
            "[::1]:7878",
            "[::1]",
            "molt.localhost:7878",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "example.com:7878",
            "10.0.0.1:7878",
            "[::2]:7878",
            "localhost.example.com",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn bearer_check() {
        let auth = Auth::new(Some("s3cret".into()));
        let mut h = HeaderMap::new();
        assert_eq!(status(auth.check(&h)), Some(401));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer nope"));
        assert_eq!(status(auth.check(&h)), Some(401));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert_eq!(status(auth.check(&h)), Some(401));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer s3cret"));
        assert_eq!(status(auth.check(&h)), None);
        assert_eq!(status(Auth::new(None).check(&h)), Some(403));
    }

    fn status(r: Result<(), Denied>) -> Option<u16> {
        r.err().map(|d| d.into_response().status().as_u16())
    }

    #[test]
    fn tokens() {
        let t = generate_token().unwrap();
        assert_eq!(t.len(), 64);
        assert_ne!(t, generate_token().unwrap());
        assert!(check_token_text(&t, "t").is_ok());
        assert!(check_token_text(&t[..MIN_TOKEN_BYTES], "t").is_ok());
        let short = check_token_text(&t[..MIN_TOKEN_BYTES - 1], "t").unwrap_err();
        assert!(short.to_string().contains("/dev/urandom"), "{short}");
        assert!(check_token_text("a b", "t").is_err());
        assert!(check_token_text("", "t").is_err());
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn private_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("admin.token");
        let first = "first-token-0123456789abcdef0123456789";
        let second = "second-token-0123456789abcdef0123456789";
        write_private(&path, first).unwrap();
        write_private(&path, second).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{second}\n")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The environment variable is not set in the unit tests.
        if std::env::var_os(TOKEN_ENV).is_none() {
            assert_eq!(
                token_from_env_or_file(Some(&path)).unwrap().as_deref(),
                Some(second)
            );
            assert_eq!(token_from_env_or_file(None).unwrap(), None);
            std::fs::write(&path, "  \n").unwrap();
            assert!(token_from_env_or_file(Some(&path)).is_err());
            assert!(token_from_env_or_file(Some(&dir.path().join("missing"))).is_err());
        }
    }
}
