//! Resolution through the Hugging Face hub: hf-hub's blocking API and its cache
//! (`{cache}/models--{org}--{name}/snapshots/{commit}/{file}`).

use std::path::PathBuf;
use std::time::Duration;

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use sf_vae::DecoderKind;

use super::{
    DEFAULT_ENDPOINT, FileOrigin, MissingFile, ModelFileSpec, ModelFiles, WeightsError,
    required_files_for,
};
use crate::ModelFamily;

/// Bound on the reachability check made before the first download.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Resumed retries of an interrupted download.
const DOWNLOAD_RETRIES: usize = 2;

/// The hub variant of `ModelLocation`, with the endpoint already chosen.
pub(super) struct HubSettings {
    pub endpoint: String,
    pub cache_dir: Option<PathBuf>,
    pub local_dir: Option<PathBuf>,
    pub progress: bool,
}

/// The endpoint: `explicit`, else `HF_ENDPOINT`, else huggingface.co (no trailing slash).
pub(super) fn endpoint(explicit: Option<&str>) -> String {
    let from_env = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty());
    explicit
        .map(str::to_owned)
        .or(from_env)
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
        .trim()
        .trim_end_matches('/')
        .to_owned()
}

pub(super) fn resolve(
    settings: &HubSettings,
    family: ModelFamily,
    decoder: DecoderKind,
) -> Result<ModelFiles, WeightsError> {
    let cache = cache(settings)?;
    let mut builder = ApiBuilder::from_cache(cache.clone())
        .with_endpoint(settings.endpoint.clone())
        .with_progress(settings.progress)
        .with_retries(DOWNLOAD_RETRIES);
    if let Some(token) = std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        builder = builder.with_token(Some(token.trim().to_owned()));
    }
    let api = builder
        .build()
        .map_err(|e| WeightsError::Config(format!("cannot set up the hub client: {e}")))?;

    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut probed = false;
    for spec in required_files_for(family, decoder) {
        if let Some(path) = in_local_dir(settings, spec) {
            found.push((spec.kind, path));
            continue;
        }
        let repo = Repo::new(spec.repo.to_owned(), RepoType::Model);
        if let Some(path) = cache.repo(repo.clone()).get(spec.repo_file) {
            found.push((spec.kind, path));
            continue;
        }
        if !probed {
            probe(&api, &repo, settings, spec, (family, decoder))?;
            probed = true;
        }
        let api_repo = api.repo(repo);
        match api_repo.download(spec.repo_file) {
            Ok(path) => found.push((spec.kind, path)),
            Err(e) => match classify(e) {
                Failure::NotFound => missing.push(MissingFile {
                    spec: *spec,
                    location: api_repo.url(spec.repo_file),
                }),
                Failure::Unreachable(message) => {
                    return Err(unreachable(settings, spec, message, (family, decoder)));
                }
                Failure::Other(message) => {
                    return Err(WeightsError::Hub {
                        endpoint: settings.endpoint.clone(),
                        repo: spec.repo.into(),
                        file: spec.repo_file.into(),
                        message,
                    });
                }
            },
        }
    }
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            origin: FileOrigin::Hub(settings.endpoint.clone()),
            files: missing,
        });
    }
    ModelFiles::from_found(found)
}

fn in_local_dir(settings: &HubSettings, spec: &ModelFileSpec) -> Option<PathBuf> {
    let path = settings.local_dir.as_ref()?.join(spec.local_path());
    path.is_file().then_some(path)
}

fn cache(settings: &HubSettings) -> Result<Cache, WeightsError> {
    if let Some(dir) = &settings.cache_dir {
        return Ok(Cache::new(dir.clone()));
    }
    // hf-hub panics without a home directory; say so instead.
    if std::env::var_os("HF_HOME").is_none() && std::env::home_dir().is_none() {
        return Err(WeightsError::Config(
            "no home directory for the hub cache: set HF_HOME or give a cache directory".into(),
        ));
    }
    Ok(Cache::from_env())
}

/// One bounded request, so that an unreachable endpoint fails fast with a clear error (hf-hub's
/// own requests have a 30 s connect timeout and no read timeout).
fn probe(
    api: &Api,
    repo: &Repo,
    settings: &HubSettings,
    spec: &ModelFileSpec,
    asked: (ModelFamily, DecoderKind),
) -> Result<(), WeightsError> {
    match api
        .repo(repo.clone())
        .info_request()
        .timeout(PROBE_TIMEOUT)
        .call()
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            // Any HTTP answer means the endpoint is there; the download reports real errors.
            match e.into_response() {
                Some(_) => Ok(()),
                None => Err(unreachable(settings, spec, message, asked)),
            }
        }
    }
}

fn unreachable(
    settings: &HubSettings,
    spec: &ModelFileSpec,
    message: String,
    (family, decoder): (ModelFamily, DecoderKind),
) -> WeightsError {
    WeightsError::HubUnreachable {
        endpoint: settings.endpoint.clone(),
        repo: spec.repo.into(),
        file: spec.repo_file.into(),
        message,
        family,
        decoder,
    }
}

enum Failure {
    NotFound,
    Unreachable(String),
    Other(String),
}

fn classify(e: ApiError) -> Failure {
    match e {
        ApiError::RequestError(err) => {
            let text = err.to_string();
            match (*err).into_response().map(|response| response.status()) {
                Some(404) => Failure::NotFound,
                Some(401 | 403) => Failure::Other(format!(
                    "{text} (the repository may be gated or private: accept its terms on the \
                     hub and set HF_TOKEN, or run `huggingface-cli login`)"
                )),
                Some(_) => Failure::Other(text),
                None => Failure::Unreachable(text),
            }
        }
        ApiError::TooManyRetries(inner) => classify(*inner),
        other => Failure::Other(other.to_string()),
    }
}
