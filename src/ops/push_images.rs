//! `up --push-images`: for hosts that cannot reach a registry (air-gapped), images are taken
//! from the Docker engine of the machine running rcfleet (`DOCKER_HOST`, else the local
//! socket) and streamed over SSH into `docker load` on each host, only those it lacks. The
//! archive is never written to disk on either side, and memory stays bounded (a few chunks).

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Duration;

use bollard::Docker;
use futures_util::StreamExt;

use super::converge::missing_images;
use super::hosts::Hosts;
use super::report::Reporter;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, Host};
use crate::remote::{Argv, Connection, ExecOptions};

/// The engine images are pushed from, checked to answer.
pub fn local_engine(remote: &Hosts) -> Result<Docker> {
    let how = "start Docker on this machine or point DOCKER_HOST at an engine that has the images";
    let docker = Docker::connect_with_defaults().map_err(|e| Error::failed(format!("--push-images: no local Docker engine ({e}); {how}")))?;
    remote
        .block_on(docker.negotiate_version())
        .map_err(|e| Error::failed(format!("--push-images: the local Docker engine does not answer ({e}); {how}")))
}

pub fn push_missing_images(fleet: &Fleet, host: &Host, conn: &Connection, local: &Docker, remote: &Hosts, report: &Reporter) -> Result<()> {
    for image in missing_images(fleet, host, conn)? {
        remote.block_on(local.inspect_image(&image)).map_err(|_| {
            Error::failed(format!(
                "{}: needs {image}, which the local Docker engine does not have; `docker pull {image}` here first",
                host.name
            ))
        })?;
        report.waiting("images", format!("{}: sending {image}", host.name));
        let mut archive = stream_archive(local, &image, remote);
        let options = ExecOptions { timeout: Some(Duration::from_secs(3600)), stdin: Some(&mut archive), stream: true, stdout: None };
        let output = conn.exec(&Argv::new("docker").arg("load"), options)?;
        if let Some(err) = archive.error() {
            return Err(Error::failed(format!("{}: reading {image} from the local engine failed: {err}", host.name)));
        }
        if !output.success() {
            return Err(Error::failed(format!("{}: `docker load` of {image} failed: {}", host.name, output.stderr_text().trim())));
        }
        report.step("images", &host.name, format!("sent {image} from the local engine"));
    }
    Ok(())
}

/// A blocking reader over the engine's export stream (`GET /images/{name}/get`).
struct Archive {
    chunks: Receiver<std::result::Result<Vec<u8>, String>>,
    current: Vec<u8>,
    offset: usize,
    error: Option<String>,
}

impl Archive {
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

fn stream_archive(local: &Docker, image: &str, remote: &Hosts) -> Archive {
    let (sender, chunks) = sync_channel(8);
    let local = local.clone();
    let image = image.to_string();
    remote.spawn(async move {
        let mut stream = local.export_image(&image);
        while let Some(chunk) = stream.next().await {
            let item = chunk.map(|bytes| bytes.to_vec()).map_err(|e| e.to_string());
            let failed = item.is_err();
            if sender.send(item).is_err() || failed {
                break;
            }
        }
    });
    Archive { chunks, current: Vec::new(), offset: 0, error: None }
}

impl Read for Archive {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => (self.current, self.offset) = (chunk, 0),
                Ok(Err(err)) => {
                    self.error = Some(err.clone());
                    return Err(std::io::Error::other(err));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}
