//! The one rollout engine: every change that replaces a serving Rocket.Chat instance (a new
//! release from `upgrade`, changed env, config or image from `up`) goes drain from Traefik →
//! recreate → wait until ready and reporting the release → back into Traefik, canary first and
//! then batch by batch, or all at once with `recreate`. When a batch fails, the way back
//! depends on [`Recovery`] and on whether the old side may still start (see `forward_only`).
//!
//! Start-first ([`Rollout::start_first`]) turns each replacement around: the new side starts on
//! the instance's other port pair beside the running container, and only once it is ready and
//! UP in Traefik does the old one leave Traefik, drain and stop. Capacity never drops, and a
//! batch that fails only loses its new containers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fleet::{Fleet, Instance, Slot};
use crate::ops::converge::{converge_unit, send_files, unit_files, wait_ready};
use crate::ops::probe;
use crate::ops::hosts::{Hosts, CONCURRENCY};
use crate::ops::instances::{drain, publish_traefik, write_prometheus_targets, write_traefik, Changes};
use crate::ops::slots;
use crate::ops::report::Reporter;
use crate::ops::wait::{self, Poll};
use crate::remote::{self, Request, DOCKER_SOCKET};
use crate::render::{self, HostArtifacts};

/// The canary (the first instance) alone, then the others `batch` at a time, in the given
/// (fleet) order.
pub fn batches<'f>(instances: impl IntoIterator<Item = &'f Instance>, batch: u32) -> Vec<Vec<&'f Instance>> {
    let instances: Vec<&Instance> = instances.into_iter().collect();
    let Some((canary, rest)) = instances.split_first() else { return Vec::new() };
    let mut batches = vec![vec![*canary]];
    batches.extend(rest.chunks(batch.max(1) as usize).map(<[&Instance]>::to_vec));
    batches
}

/// What happens to a batch that failed, and to those replaced before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Back to the old side: the failing batch, and every batch replaced before it too when
    /// `all` (a workspace should not run mixed versions).
    RollBack { all: bool },
    /// Nothing goes back (`up` keeps no old files to go back to): the failing batch stays out of
    /// Traefik, every other instance serves on.
    Hold,
}

/// Asked after a failure, before anything goes back to the old side: `Some(why)` when the old
/// side must not start again (the database was migrated forward), with the ways on.
pub type ForwardOnly<'a> = &'a (dyn Fn() -> Option<String> + Sync);

/// Told before and after each batch: (instances replaced so far, instances in flight). The
/// deploy lock keeps it, so that an interrupted run can be finished (`ops::lock`).
pub type OnProgress<'a> = &'a (dyn Fn(&[String], &[String]) + Sync);

pub struct Rollout<'a> {
    /// The fleet as it runs (every instance Traefik lists, also on hosts this run cannot reach).
    pub old: &'a Fleet,
    /// The fleet as it should run.
    pub new: &'a Fleet,
    pub old_files: &'a [HostArtifacts],
    pub new_files: &'a [HostArtifacts],
    pub remote: &'a Hosts,
    pub report: &'a Reporter,
    pub recovery: Recovery,
    pub forward_only: Option<ForwardOnly<'a>>,
    pub on_progress: Option<OnProgress<'a>>,
    /// How the operator finishes the change after a stop, e.g. "run the same upgrade again".
    pub finish: &'a str,
    /// Start the new side on the spare ports before the old side stops (see the module doc).
    pub start_first: bool,
    /// Instances that start-first moved to their other slot in this run (name → slot now).
    pub moved: Mutex<BTreeMap<String, Slot>>,
    /// When the first instance was ready on the new side: mixed versions from here on.
    pub first_ready: OnceLock<Instant>,
    /// Held while Prometheus' targets file is written from `moved`, so that retiring batches
    /// write it in the order they moved.
    pub prometheus_file: Mutex<()>,
    /// Start-first: instances of the next batch whose new containers were created (not
    /// started) on their other slot while the batch before booted, by name.
    pub prepared: Mutex<BTreeMap<String, Prepared>>,
}

/// An instance's containers created ahead on `slot` for `side` (see `prepare_beside`).
#[derive(Debug)]
pub struct Prepared {
    slot: Slot,
    side: Side,
    /// The files sent for them (those that differed).
    written: BTreeSet<String>,
    /// The created containers' ids.
    containers: Vec<String>,
}

type Timings = (Vec<(String, f64)>, Vec<(String, f64)>);

/// The old containers of a start-first batch, out of Traefik since `left_traefik`.
struct Retire {
    old: Vec<Instance>,
    left_traefik: Instant,
    drain: Duration,
}

/// A start-first batch's new containers, started at `at` on the other port pair of each
/// instance beside the `old` ones (booting, then ready); not in Traefik yet.
struct Started {
    old: Vec<Instance>,
    new: Vec<Instance>,
    at: Instant,
}

/// The batch after the one being replaced (empty after the last), and its label.
struct Next<'n, 'a> {
    batch: &'n [&'a Instance],
    label: String,
}

/// Why replacing a batch stopped, and whether any of its instances had been touched.
struct Failure {
    /// False when Traefik never confirmed the drain: the batch still serves, untouched.
    touched: bool,
    message: String,
}

/// Which side of the upgrade a step moves instances to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    New,
    Old,
}

impl<'a> Rollout<'a> {
    fn fleet(&self, side: Side) -> &'a Fleet {
        match side {
            Side::New => self.new,
            Side::Old => self.old,
        }
    }

    /// Canary then batches. On failure, see [`Recovery`] and `forward_only`; the error says
    /// what happened to each instance and how to go on. Start-first drains and stops a batch's
    /// old containers in the background while the next batch boots, so a batch costs
    /// max(boot, drain) instead of boot + drain.
    pub fn rolling(&self, batches: &[Vec<&'a Instance>]) -> std::result::Result<Timings, String> {
        std::thread::scope(|scope| {
            let handles = std::cell::RefCell::new(Vec::new());
            let retire_later = |old: Retire| handles.borrow_mut().push(scope.spawn(move || self.retire(old)));
            let wait_retired = || {
                for handle in handles.borrow_mut().drain(..) {
                    let _ = handle.join();
                }
            };
            let result = self.rolling_with(batches, &retire_later, &wait_retired);
            wait_retired();
            result.map_err(|story| match self.remove_prepared() {
                Ok(()) => story,
                Err(err) => format!("{story}\nRemoving the containers created ahead for the next batch failed: {err}"),
            })
        })
    }

    fn rolling_with(
        &self,
        batches: &[Vec<&'a Instance>],
        retire_later: &dyn Fn(Retire),
        wait_retired: &dyn Fn(),
    ) -> std::result::Result<Timings, String> {
        let mut in_service: Vec<&Instance> = self.old.instances().collect();
        let mut phases = Vec::new();
        let mut timings = Vec::new();
        let mut done: Vec<&Vec<&Instance>> = Vec::new();
        let mut replaced: Vec<String> = Vec::new();
        // Start-first: the batch the one before started while Traefik took that one in.
        let mut ahead: Option<std::result::Result<Started, Failure>> = None;
        let label_of = |index: usize| if index == 0 { "canary".to_string() } else { format!("batch {index}") };
        for (index, batch) in batches.iter().enumerate() {
            let label = label_of(index);
            if crate::interrupt::requested() {
                if let Some(Ok(started)) = ahead.take() {
                    // Launched ahead, never in Traefik: it goes without anyone noticing.
                    if let Err(err) = self.remove_started(&started) {
                        self.report.warn(format!("removing the new containers of {} failed: {err}", names(batch)));
                    }
                }
                self.put_back_waiting(batch, &mut in_service);
                return Err(self.interrupted(&done, &in_service));
            }
            let in_flight: Vec<String> = batch.iter().map(|i| i.name.clone()).collect();
            if let Some(on_progress) = self.on_progress {
                on_progress(&replaced, &in_flight);
            }
            crate::interrupt::set_left_to_do(&format!(
                "{} may be out of Traefik or half replaced: {} to finish",
                names(batch),
                self.finish
            ));
            let started = Instant::now();
            // Stop-first takes the next batch out of Traefik in the change that puts this one
            // back; start-first starts it while Traefik takes this one in.
            let next = Next { batch: batches.get(index + 1).map(Vec::as_slice).unwrap_or(&[]), label: label_of(index + 1) };
            let result = self.swap(batch, next, &mut in_service, Side::New, &label, retire_later, ahead.take());
            let result = result.map(|(times, started_next)| {
                ahead = started_next;
                times
            });
            if result.is_err() {
                // Recovery may start instances on the ports the retiring ones still hold.
                wait_retired();
            }
            match result {
                Ok(times) => {
                    timings.extend(times);
                    phases.push((label, started.elapsed().as_secs_f64()));
                    done.push(batch);
                    replaced.extend(in_flight);
                    if let Some(on_progress) = self.on_progress {
                        on_progress(&replaced, &[]);
                    }
                }
                Err(Failure { touched: false, message }) if self.start_first => {
                    let mut story = vec![format!(
                        "{label} ({}) failed on the spare ports: {message}. Its new containers were removed; nothing was \
                         stopped: the old ones keep serving",
                        names(batch)
                    )];
                    if let Some(why) = self.forward_only.and_then(|forward_only| forward_only()) {
                        story.push(format!("Note: {why}"));
                    }
                    // First out of Traefik with what does not answer (a lost host): going back
                    // waits for Traefik to see every listed instance UP.
                    story.extend(self.settle(&mut in_service));
                    story.extend(self.recover(&[], &done, &mut in_service));
                    story.extend(self.settle(&mut in_service));
                    story.push(self.state_line(&in_service));
                    return Err(story.join("\n"));
                }
                Err(Failure { touched: false, message }) => {
                    return Err(format!(
                        "{label} ({}) was not started: {message}. Nothing was stopped; every instance keeps serving as                          it was{}.\n{}",
                        names(batch),
                        if done.is_empty() {
                            String::new()
                        } else {
                            format!(" (replaced ones stay replaced: {} once Traefik is fixed)", self.finish)
                        },
                        self.state_line(&in_service)
                    ));
                }
                Err(Failure { message: failure, .. }) => {
                    let mut story = vec![format!("{label} ({}) failed: {failure}", names(batch))];
                    story.extend(self.settle(&mut in_service));
                    story.extend(self.recover(batch, &done, &mut in_service));
                    story.extend(self.settle(&mut in_service));
                    story.push(self.state_line(&in_service));
                    return Err(story.join("\n"));
                }
            }
        }
        Ok((phases, timings))
    }

    /// After `batch` failed with `done` replaced before it: goes back as [`Recovery`] says,
    /// unless the old side must not start again. Says what it did. An empty `batch`: the
    /// failing batch needs nothing (start-first never stopped it).
    fn recover(&self, batch: &[&'a Instance], done: &[&Vec<&'a Instance>], in_service: &mut Vec<&'a Instance>) -> Vec<String> {
        let replaced: Vec<&str> = done.iter().flat_map(|b| b.iter().map(|i| i.name.as_str())).collect();
        if batch.is_empty() && replaced.is_empty() {
            return Vec::new();
        }
        let held = match self.recovery {
            Recovery::Hold => Some(format!("fix the cause and {}", self.finish)),
            Recovery::RollBack { .. } => self.forward_only.and_then(|forward_only| forward_only()),
        };
        if let Some(why) = held {
            let mut story = Vec::new();
            if !batch.is_empty() {
                story.push(format!("{} stay out of Traefik and were not put back on the old side: {why}", names(batch)));
            } else if self.recovery != Recovery::Hold {
                story.push(format!("replaced instances were not put back on the old side: {why}"));
            }
            if !replaced.is_empty() {
                story.push(format!("{} were replaced before and keep serving", replaced.join(", ")));
            }
            return story;
        }
        let mut story = Vec::new();
        if !batch.is_empty() {
            story.push(self.restore(batch, in_service, "the failing batch"));
        }
        match self.recovery {
            Recovery::RollBack { all: true } => {
                for earlier in done.iter().rev() {
                    story.push(self.restore(earlier, in_service, "already upgraded"));
                }
            }
            _ if !replaced.is_empty() => story.push(format!(
                "--no-rollback: {} stay on {} while the rest run {}; the workspace runs mixed versions until you \
                 run the upgrade again or roll back",
                replaced.join(", "),
                self.new.workspace.release,
                self.old.workspace.release
            )),
            _ => {}
        }
        story
    }

    /// Every instance replaced at once: a planned outage. Traefik keeps listing them (it never
    /// gets an empty list) and its health check takes them out while they restart.
    pub fn recreate(&self) -> std::result::Result<Timings, String> {
        let all: Vec<&Instance> = self.old.instances().collect();
        let mut in_service = all.clone();
        let started = Instant::now();
        match self.replace(&all, &[], &mut in_service, Side::New, "all instances") {
            Ok(times) => Ok((vec![("recreate".to_string(), started.elapsed().as_secs_f64())], times)),
            Err(Failure { message: failure, .. }) => {
                let mut story = vec![format!("replacing every instance failed: {failure}")];
                story.extend(self.recover(&all, &[], &mut in_service));
                story.push(self.state_line(&in_service));
                Err(story.join("\n"))
            }
        }
    }

    /// Replaces `batch` with `side`'s release the way this rollout does it; start-first hands
    /// the old containers to `retire`, and returns the next batch started meanwhile (from
    /// `ahead` the one started by the batch before, if any).
    #[allow(clippy::too_many_arguments)]
    fn swap(
        &self,
        batch: &[&'a Instance],
        next: Next<'_, 'a>,
        in_service: &mut Vec<&'a Instance>,
        side: Side,
        label: &str,
        retire: &dyn Fn(Retire),
        ahead: Option<std::result::Result<Started, Failure>>,
    ) -> std::result::Result<(Vec<(String, f64)>, Option<std::result::Result<Started, Failure>>), Failure> {
        if self.start_first {
            let launched = match ahead {
                Some(launched) => launched?,
                None => self.launch_beside(batch, side, label)?,
            };
            // While this batch boots, the next one's containers are created: its start, when
            // this one is ready, is then only the containers' start.
            let started = std::thread::scope(|scope| {
                let preparing = (!next.batch.is_empty()).then(|| scope.spawn(|| self.prepare_beside(next.batch, side)));
                let started = self.until_serving(launched, side);
                if let Some(preparing) = preparing {
                    preparing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                }
                started
            })?;
            self.replace_start_first(batch, started, next, in_service, side, label, retire)
        } else {
            Ok((self.replace(batch, next.batch, in_service, side, label)?, None))
        }
    }

    /// `instance` on the port pair it listens on now.
    fn current(&self, instance: &Instance) -> Instance {
        match self.moved.lock().unwrap_or_else(|p| p.into_inner()).get(&instance.name) {
            Some(slot) => instance.on_slot(*slot),
            None => instance.clone(),
        }
    }

    /// Start-first, first part: `side`'s release is created and started on each instance's
    /// other port pair, beside the old container. A failure removes the new containers: the
    /// batch serves as it was (`touched: false`).
    fn launch_beside(&self, batch: &[&'a Instance], side: Side, label: &str) -> std::result::Result<Started, Failure> {
        let at = Instant::now();
        let old: Vec<Instance> = batch.iter().map(|i| self.current(i)).collect();
        let new: Vec<Instance> = old.iter().map(|i| i.on_slot(i.slot.other())).collect();
        let release = &self.fleet(side).workspace.release;
        self.report.step("start", "", format!("{label}: {} starting on {release} beside the running ones", names(batch)));
        let results = remote::fan_out(&new, CONCURRENCY, |i| i.name.clone(), |instance| match self.take_prepared(instance, side) {
            Some(prepared) => self.start_prepared(instance, prepared),
            None => {
                let written = self.send(instance, side)?;
                self.launch(instance, side, written)
            }
        });
        match remote::all_succeeded(results) {
            Ok(_) => Ok(Started { old, new, at }),
            Err(err) => Err(Failure { touched: false, message: self.remove_new(&new, err.to_string()) }),
        }
    }

    /// Start-first, ahead of a batch's turn: sends each instance's files for its other slot and
    /// creates its containers there, not started (no port taken, no memory). The batch's
    /// launch then only starts them (Docker's API, no `compose` run: measured on the lab, a
    /// `compose up` took 0.3-0.4 s whether it created the container or found it created). A
    /// failure is left for the launch to meet and report (it runs `compose up` then); what was
    /// created is recorded, for [`Rollout::launch_beside`] or, if the rollout stops first, for
    /// removal.
    fn prepare_beside(&self, batch: &[&'a Instance], side: Side) {
        if crate::interrupt::requested() {
            return;
        }
        let new: Vec<Instance> = batch.iter().map(|i| self.current(i)).map(|i| i.on_slot(i.slot.other())).collect();
        remote::fan_out(&new, CONCURRENCY, |i| i.name.clone(), |instance| {
            let written = self.send(instance, side)?;
            let fleet = self.fleet(side);
            let unit = render::instance_unit(fleet, instance);
            let conn = self.remote.host(&instance.host);
            let created = conn.run(&conn.compose(&format!("{}/{}", render::deploy_dir(fleet), unit.dir), &unit.project)?.create());
            // Recorded even when the list fails: the launch then runs `compose up`, a stop removes it.
            let containers: Vec<String> = probe::containers(fleet, conn)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.project == unit.project && c.state == "created")
                .map(|c| c.id)
                .collect();
            let prepared = Prepared { slot: instance.slot, side, written, containers };
            self.prepared.lock().unwrap_or_else(|p| p.into_inner()).insert(instance.name.clone(), prepared);
            created
        });
    }

    /// What [`Rollout::prepare_beside`] created for `instance` (on its slot, for `side`), if
    /// it created its containers. Taken either way: the instance's launch owns its unit now.
    fn take_prepared(&self, instance: &Instance, side: Side) -> Option<Prepared> {
        let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(&instance.name)?;
        (prepared.slot == instance.slot && prepared.side == side && !prepared.containers.is_empty()).then_some(prepared)
    }

    /// Starts the containers [`Rollout::prepare_beside`] created for `instance`.
    fn start_prepared(&self, instance: &Instance, prepared: Prepared) -> Result<()> {
        let conn = self.remote.host(&instance.host);
        let requests: Vec<Request> =
            prepared.containers.iter().map(|id| Request::post_unix(DOCKER_SOCKET, &format!("/containers/{id}/start"))).collect();
        for answer in conn.batch(&requests) {
            let response = answer?.response().ok_or_else(|| conn.fail("starting a container: not an HTTP answer"))?;
            // 204: started; 304: already running.
            if response.status != 204 && response.status != 304 {
                return Err(conn.fail(format!(
                    "starting {}'s container: the Docker Engine API answered {}: {}",
                    instance.name,
                    response.status,
                    response.body.trim()
                )));
            }
        }
        let files = if prepared.written.is_empty() { String::new() } else { format!(", {} file(s) changed", prepared.written.len()) };
        self.report.step("instance", &instance.host, format!("{} started (created ahead{files})", instance.name));
        Ok(())
    }

    /// After a stop: removes what [`Rollout::prepare_beside`] created for a batch whose turn
    /// never came (never started, never in Traefik).
    fn remove_prepared(&self) -> std::result::Result<(), String> {
        let prepared = std::mem::take(&mut *self.prepared.lock().unwrap_or_else(|p| p.into_inner()));
        let created: Vec<Instance> = prepared
            .iter()
            .filter_map(|(name, prepared)| self.old.instances().find(|i| &i.name == name).map(|i| i.on_slot(prepared.slot)))
            .collect();
        let removed = remote::fan_out(&created, CONCURRENCY, |i| i.name.clone(), |instance| self.remove_unit(instance));
        remote::all_succeeded(removed).map(|_| ()).map_err(|err| err.to_string())
    }

    /// Start-first, second part: waits until the launched containers are ready and report
    /// `side`'s release. A failure removes them (`touched: false`).
    fn until_serving(&self, launched: Started, side: Side) -> std::result::Result<Started, Failure> {
        let results = remote::fan_out(&launched.new, CONCURRENCY, |i| i.name.clone(), |instance| self.until_ready(instance, side));
        match remote::all_succeeded(results) {
            Ok(_) => Ok(launched),
            Err(err) => Err(Failure { touched: false, message: self.remove_new(&launched.new, err.to_string()) }),
        }
    }

    /// Start-first, last part: once `started` (the batch's new containers) serves, one change
    /// of Traefik's list puts the new ones in and the old ones out, confirmed UP; the old ones
    /// go to `retire` (drained, then stopped). Meanwhile the `next` batch is launched beside its
    /// old containers and returned (booting, or why not) for its turn: its start overlaps this
    /// change of Traefik's list. Until the old ones leave Traefik a failure removes the new
    /// containers only, the next batch's too (`touched: false`: the batch serves as it was).
    /// Returns each instance's time from start to old one out.
    #[allow(clippy::too_many_arguments)]
    fn replace_start_first(
        &self,
        batch: &[&'a Instance],
        started: Started,
        next: Next<'_, 'a>,
        in_service: &mut Vec<&'a Instance>,
        side: Side,
        label: &str,
        retire: &dyn Fn(Retire),
    ) -> std::result::Result<(Vec<(String, f64)>, Option<std::result::Result<Started, Failure>>), Failure> {
        std::thread::scope(|scope| {
            let next_started = (!next.batch.is_empty() && !crate::interrupt::requested())
                .then(|| scope.spawn(|| self.launch_beside(next.batch, side, &next.label)));
            let join = |handle: std::thread::ScopedJoinHandle<'_, std::result::Result<Started, Failure>>| {
                handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            match self.swap_in(batch, started, in_service, side, label) {
                Ok((times, old)) => {
                    retire(old);
                    Ok((times, next_started.map(join)))
                }
                Err(mut failure) => {
                    if let Some(Ok(ahead)) = next_started.map(join) {
                        if let Err(err) = self.remove_started(&ahead) {
                            failure.message.push_str(&format!("; removing the new containers of {} failed too: {err}", next.label));
                        }
                    }
                    Err(failure)
                }
            }
        })
    }

    /// [`Rollout::replace_start_first`]'s change of Traefik's list and the slots' records.
    fn swap_in(
        &self,
        batch: &[&'a Instance],
        started: Started,
        in_service: &mut Vec<&'a Instance>,
        side: Side,
        label: &str,
    ) -> std::result::Result<(Vec<(String, f64)>, Retire), Failure> {
        let fleet = self.fleet(side);
        let release = &fleet.workspace.release;
        let Started { old, new, at } = started;
        // One swap in Traefik's list: the new ones (ready) in, the old ones out. Requests in
        // flight to the old ones finish there; they run until drained.
        let others: Vec<Instance> =
            in_service.iter().filter(|i| !new.iter().any(|n| n.name == i.name)).map(|i| self.current(i)).collect();
        let mut swapped: Vec<&Instance> = others.iter().chain(&new).collect();
        order_like_fleet(self.old, &mut swapped);
        if let Err(err) = publish_traefik(self.old, self.remote, self.report, &swapped, &mut Changes::new()) {
            let put_back = match self.set_traefik(in_service) {
                Ok(()) => String::new(),
                Err(e) => format!("; putting Traefik's list back failed too: {e}"),
            };
            let message = format!("Traefik did not apply the list with {} on their new ports ({err}){put_back}", names(batch));
            return Err(Failure { touched: false, message: self.remove_new(&new, message) });
        }
        {
            let mut moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
            moved.extend(new.iter().map(|i| (i.name.clone(), i.slot)));
        }
        let touched = |message: String| Failure { touched: true, message };
        for instance in &new {
            slots::record(fleet, self.remote.host(&instance.host), instance, instance.slot).map_err(|e| touched(e.to_string()))?;
        }
        // The point an interruption finds the batch at most often: the new ones serve, recorded;
        // the old ones drain. An interrupted run's successor removes what is left of them.
        self.report.step(
            "drain",
            "",
            format!("{label}: old {} out of Traefik; the new ones serve; stopping the old ones in {} s", names(batch), fleet.upgrade.drain_seconds),
        );
        let seconds = at.elapsed().as_secs_f64();
        self.report.step("upgrade", "", format!("{label}: {} on {release} on their other ports ({seconds:.1} s)", names(batch)));
        let times = batch.iter().map(|i| (i.name.clone(), seconds)).collect();
        Ok((times, Retire { old, left_traefik: Instant::now(), drain: Duration::from_secs(fleet.upgrade.drain_seconds) }))
    }

    /// Lets requests in flight to `retiring`'s containers finish, then stops and removes them.
    /// The new ones serve already: a failure here is a warning.
    fn retire(&self, retiring: Retire) {
        // Prometheus follows the moved instances now, while the old ones drain: its discovery
        // takes seconds to pass a changed file on, and the run ends waiting for it to list them.
        {
            let _writing = self.prometheus_file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = write_prometheus_targets(&self.as_moved(self.new), self.remote, self.report) {
                self.report.warn(format!("Prometheus' targets file was not updated for the moved instances: {err}"));
            }
        }
        std::thread::sleep(retiring.drain.saturating_sub(retiring.left_traefik.elapsed()));
        let refs: Vec<&Instance> = retiring.old.iter().collect();
        let stopped = remote::fan_out(&retiring.old, CONCURRENCY, |i| i.name.clone(), |instance| self.remove_unit(instance));
        match remote::all_succeeded(stopped) {
            Ok(_) => self.report.step("drain", "", format!("old {} drained ({} s) and stopped", names(&refs), retiring.drain.as_secs())),
            Err(err) => self.report.warn(format!("the new {} serve, but stopping the old containers failed: {err}", names(&refs))),
        }
    }

    /// After a failed start: removes the new containers of `new`; returns `failure` with what
    /// could not be removed.
    fn remove_new(&self, new: &[Instance], failure: String) -> String {
        let removed = remote::fan_out(new, CONCURRENCY, |i| i.name.clone(), |instance| self.remove_unit(instance));
        match remote::all_succeeded(removed) {
            Ok(_) => failure,
            Err(err) => format!("{failure}; removing the new containers failed too: {err}"),
        }
    }

    /// Removes the new containers of a batch started ahead that will not go into Traefik.
    fn remove_started(&self, started: &Started) -> std::result::Result<(), String> {
        let removed = remote::fan_out(&started.new, CONCURRENCY, |i| i.name.clone(), |instance| self.remove_unit(instance));
        remote::all_succeeded(removed).map(|_| ()).map_err(|err| err.to_string())
    }

    /// Brings down `instance`'s compose project on its slot and removes its folder.
    fn remove_unit(&self, instance: &Instance) -> Result<()> {
        slots::remove_unit(self.old, self.remote.host(&instance.host), instance)
    }

    /// Drain `batch` from Traefik, recreate it on `side`'s release, wait, put it back. Returns
    /// each instance's time out of service. On error the batch may be out of Traefik.
    fn replace(
        &self,
        batch: &[&'a Instance],
        next: &[&'a Instance],
        in_service: &mut Vec<&'a Instance>,
        side: Side,
        label: &str,
    ) -> std::result::Result<Vec<(String, f64)>, Failure> {
        let fleet = self.fleet(side);
        let release = &fleet.workspace.release;
        let started = Instant::now();
        let before = in_service.clone();
        let already_out = batch.iter().all(|b| !in_service.iter().any(|i| i.name == b.name));
        in_service.retain(|i| !batch.iter().any(|b| b.name == i.name));
        if already_out {
            // Taken out with the batch before it (or by a failure's settling): Traefik has the list.
        } else if in_service.is_empty() {
            // Only `recreate` replaces every instance at once: Traefik is never given an empty
            // list; its health check takes the instances out while they restart.
            self.report.step("drain", "", format!("{label}: the workspace is DOWN while {} restart", names(batch)));
        } else if let Err(err) = self.set_traefik(in_service) {
            // Traefik kept its previous configuration; make its file say so again, so that a
            // later reload does not drain instances nobody is replacing.
            let restored = self.write_traefik(&before);
            *in_service = before;
            let file = match restored {
                Ok(()) => "its file was put back".to_string(),
                Err(e) => format!("putting its file back failed too: {}", e),
            };
            return Err(Failure {
                touched: false,
                message: format!("Traefik did not apply the drain of {} ({}); {file}", names(batch), err),
            });
        }
        let touched = |message: String| Failure { touched: true, message };
        self.report.step("drain", "", format!("{label}: {} out of Traefik; waiting {} s", names(batch), fleet.upgrade.drain_seconds));
        let drained: Vec<&str> = batch.iter().map(|i| i.name.as_str()).collect();
        // The batch's new files go to its hosts while it drains: its running containers read
        // them only when created (compose file and env file), which comes after the drain.
        let sent = std::thread::scope(|scope| {
            let sending = scope.spawn(|| {
                remote::fan_out(batch, CONCURRENCY, |i| i.name.clone(), |instance| self.send(&self.current(instance), side))
            });
            drain(self.report, Duration::from_secs(fleet.upgrade.drain_seconds), &drained);
            sending.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let written: BTreeMap<String, BTreeSet<String>> = remote::all_succeeded(sent).map_err(|e| touched(e.to_string()))?.into_iter().collect();
        let results = remote::fan_out(batch, CONCURRENCY, |i| i.name.clone(), |instance| {
            let instance = self.current(instance);
            self.launch(&instance, side, written.get(&instance.name).cloned().unwrap_or_default())?;
            self.until_ready(&instance, side)
        });
        remote::all_succeeded(results).map_err(|e| touched(e.to_string()))?;
        // Back in, and the next batch out, in one change of Traefik's list: never fewer serve
        // than while one batch is out.
        let next_out: Vec<&'a Instance> = in_service.iter().copied().filter(|i| next.iter().any(|n| n.name == i.name)).collect();
        in_service.retain(|i| !next_out.iter().any(|n| n.name == i.name));
        in_service.extend(batch);
        order_like_fleet(self.old, in_service);
        if let Err(err) = self.set_traefik(in_service) {
            // As far as this run knows, the next batch still serves.
            in_service.extend(next_out);
            order_like_fleet(self.old, in_service);
            return Err(touched(format!("putting {} back into Traefik: {}", names(batch), err)));
        }
        let seconds = started.elapsed().as_secs_f64();
        let and_next = if next_out.is_empty() { String::new() } else { format!("; {} taken out of Traefik in the same change", names(&next_out)) };
        self.report.step("upgrade", "", format!("{label}: {} on {release}, back in Traefik ({seconds:.1} s){and_next}", names(batch)));
        Ok(batch.iter().map(|i| (i.name.clone(), seconds)).collect())
    }

    /// Before stopping between batches: puts back into Traefik the instances of `batch` that
    /// the change before took out (stop-first drains the next batch as it puts one back).
    fn put_back_waiting(&self, batch: &[&'a Instance], in_service: &mut Vec<&'a Instance>) {
        let waiting: Vec<&'a Instance> = batch.iter().copied().filter(|b| !in_service.iter().any(|i| i.name == b.name)).collect();
        if waiting.is_empty() {
            return;
        }
        in_service.extend(&waiting);
        order_like_fleet(self.old, in_service);
        match self.set_traefik(in_service) {
            Ok(()) => self.report.step("traefik", "", format!("{} back in Traefik (not replaced: the run stops)", names(&waiting))),
            Err(err) => {
                in_service.retain(|i| !waiting.iter().any(|w| w.name == i.name));
                self.report.warn(format!("putting {} back into Traefik failed: {err}", names(&waiting)));
            }
        }
    }

    /// Puts `batch` back on the old release and into Traefik; says how that went.
    fn restore(&self, batch: &[&'a Instance], in_service: &mut Vec<&'a Instance>, what: &str) -> String {
        let nothing_next = Next { batch: &[], label: String::new() };
        match self.swap(batch, nothing_next, in_service, Side::Old, "rollback", &|old| self.retire(old), None) {
            Ok(_) => format!("rolled back ({what}): {} on {} and back in Traefik", names(batch), self.old.workspace.release),
            Err(Failure { message: failure, .. }) => format!(
                "rolling back {} ({what}) failed: {failure}; they stay out of Traefik. Fix the host, then run `rcfleet up` \
                 to put them back on {}",
                names(batch),
                self.old.workspace.release
            ),
        }
    }

    /// Sends `instance`'s files for `side` (those that differ); returns the paths written.
    fn send(&self, instance: &Instance, side: Side) -> Result<BTreeSet<String>> {
        let fleet = self.fleet(side);
        let files = match side {
            Side::New => self.new_files,
            Side::Old => self.old_files,
        };
        send_files(self.remote.host(&instance.host), &render::deploy_dir(fleet), &instance_files(fleet, files, instance)?)
    }

    /// (Re)creates `instance` from its files on the host (`written`: those [`Rollout::send`]
    /// changed).
    fn launch(&self, instance: &Instance, side: Side, written: BTreeSet<String>) -> Result<()> {
        let fleet = self.fleet(side);
        let unit = render::instance_unit(fleet, instance);
        let changed = BTreeMap::from([(instance.host.clone(), written)]);
        converge_unit(fleet, self.remote.host(&instance.host), &unit, &changed, &render::deploy_dir(fleet), self.report).map(|_| ())
    }

    /// Waits until `instance` is ready and its metrics report `side`'s release.
    fn until_ready(&self, instance: &Instance, side: Side) -> Result<()> {
        let fleet = self.fleet(side);
        wait_ready(fleet, self.remote, self.remote.host(&instance.host), instance, self.report)?;
        let want = fleet.workspace.release.to_string();
        wait::until(self.report, "upgrade", &format!("{} reporting {want}", instance.name), Duration::from_secs(60), crate::ops::converge::POLL, || {
            Ok::<Poll<()>, Error>(match probe::instance_version_on(self.remote.host(&instance.host), instance) {
                Some(version) if version == want => Ok(()),
                Some(version) => Err(format!("reports {version}")),
                None => Err("no rocketchat_info yet".to_string()),
            })
        })
        .map_err(|e| Error::failed(format!("{}: {}", instance.host, e)))?;
        if side == Side::New {
            let _ = self.first_ready.set(Instant::now());
        }
        Ok(())
    }

    /// Writes Traefik's dynamic file listing `in_service` and waits until Traefik's API shows
    /// exactly those, all UP (but those on hosts this run could not reach).
    fn set_traefik(&self, in_service: &[&Instance]) -> Result<()> {
        let current: Vec<Instance> = in_service.iter().map(|i| self.current(i)).collect();
        let current: Vec<&Instance> = current.iter().collect();
        publish_traefik(self.old, self.remote, self.report, &current, &mut Changes::new()).map(|_| ())
    }

    /// After a failure: takes out of Traefik every listed instance that is not ready (its host
    /// may be lost), so Traefik only lists instances that answer. Says what it took out.
    fn settle(&self, in_service: &mut Vec<&'a Instance>) -> Vec<String> {
        // Instances on hosts this run could not reach are Traefik's health check's to judge.
        let listed: Vec<&Instance> = in_service.iter().copied().filter(|i| self.remote.try_host(&i.host).is_some()).collect();
        let ready = remote::fan_out(&listed, CONCURRENCY, |i| i.name.clone(), |instance| {
            probe::instance_ready_steady(self.remote, self.old, &self.current(instance))
        });
        let not_ready: Vec<String> = ready
            .into_iter()
            .filter(|(_, result)| !matches!(result, Ok(Ok(()))))
            .map(|(name, _)| name)
            .collect();
        if not_ready.is_empty() {
            return Vec::new();
        }
        in_service.retain(|i| !not_ready.contains(&i.name));
        match self.set_traefik(in_service) {
            Ok(()) => vec![format!("took {} out of Traefik: not ready (host lost?)", not_ready.join(", "))],
            Err(err) => vec![format!("taking {} out of Traefik failed: {}", not_ready.join(", "), err.to_string())],
        }
    }

    /// Writes Traefik's dynamic file listing `in_service`, without waiting for Traefik.
    fn write_traefik(&self, in_service: &[&Instance]) -> Result<()> {
        let current: Vec<Instance> = in_service.iter().map(|i| self.current(i)).collect();
        write_traefik(self.old, self.remote, &current.iter().collect::<Vec<_>>()).map(|_| ())
    }

    /// `fleet` with the moves of this run: where its instances listen now.
    pub fn as_moved(&self, fleet: &Fleet) -> Fleet {
        fleet.with_slots(&self.moved.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The report when Ctrl-C stopped the rollout between batches.
    fn interrupted(&self, done: &[&Vec<&Instance>], in_service: &[&Instance]) -> String {
        let upgraded: Vec<&str> = done.iter().flat_map(|b| b.iter().map(|i| i.name.as_str())).collect();
        let waiting: Vec<&str> =
            self.old.instances().map(|i| i.name.as_str()).filter(|n| !upgraded.contains(n)).collect();
        let upgraded = if upgraded.is_empty() { "none".to_string() } else { upgraded.join(", ") };
        if self.old.workspace.release == self.new.workspace.release {
            return format!(
                "stopped by Ctrl-C between batches. Replaced: {upgraded}. Not yet: {}. {} to finish.\n{}",
                waiting.join(", "),
                self.finish,
                self.state_line(in_service)
            );
        }
        format!(
            "stopped by Ctrl-C between batches. On {}: {upgraded}. Still on {}: {}. The workspace runs mixed versions: \
             {} to finish it.\n{}",
            self.new.workspace.release,
            self.old.workspace.release,
            waiting.join(", "),
            self.finish,
            self.state_line(in_service)
        )
    }

    fn state_line(&self, in_service: &[&Instance]) -> String {
        let out: Vec<&str> =
            self.old.instances().filter(|i| !in_service.iter().any(|s| s.name == i.name)).map(|i| i.name.as_str()).collect();
        if out.is_empty() {
            format!("Now: every instance is in Traefik ({} of them).", in_service.len())
        } else {
            format!("Now: {} in Traefik; out of Traefik: {}.", in_service.len(), out.join(", "))
        }
    }
}

/// The files of `instance`'s unit on the port pair it carries: those rendered for it when it
/// is on the slot `files` were rendered for, else rendered again for its other slot.
fn instance_files(fleet: &Fleet, files: &[HostArtifacts], instance: &Instance) -> Result<Vec<render::Artifact>> {
    let unit = render::instance_unit(fleet, instance);
    let rendered = unit_files(files, &unit);
    if !rendered.is_empty() {
        return Ok(rendered);
    }
    // Every instance has the same instance.env; take it from the host's rendered files.
    let env = files
        .iter()
        .filter(|h| h.host == instance.host)
        .flat_map(|h| &h.files)
        .find(|f| f.path.ends_with("/instance.env"))
        .ok_or_else(|| Error::failed(format!("{}: no rendered instance.env (a bug in rcfleet)", instance.host)))?;
    render::instance_files(fleet, instance, &env.content)
}

fn names(batch: &[&Instance]) -> String {
    batch.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn order_like_fleet(fleet: &Fleet, instances: &mut [&Instance]) {
    let order: Vec<&str> = fleet.instances().map(|i| i.name.as_str()).collect();
    instances.sort_by_key(|i| order.iter().position(|n| *n == i.name).unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_first_then_batches_in_fleet_order() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/three-app-hosts.toml")).unwrap();
        let fleet = crate::inventory::parse(&text, std::path::Path::new("three-app-hosts.toml")).unwrap();
        let plan: Vec<Vec<String>> =
            batches(fleet.instances(), 2).iter().map(|b| b.iter().map(|i| i.name.clone()).collect()).collect();
        assert_eq!(plan, vec![vec!["app1-0"], vec!["app1-1", "app2-0"], vec!["app2-1", "app3-0"], vec!["app3-1"]]);
        assert_eq!(batches(fleet.instances(), 1).len(), 6);
    }
}
