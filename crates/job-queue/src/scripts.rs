//! The Lua scripts of the index (`src/scripts/*.lua`), loaded once per [`crate::Queue`].

use redis::Script;

/// The scripts, with the fair-order functions prepended to those that call them.
pub(crate) struct Scripts {
    /// `fair.lua` + `enqueue.lua`, sent with `EVAL` inside pipelines.
    pub(crate) enqueue: String,
    /// `fair.lua` + `release.lua`, sent with `EVAL` inside pipelines.
    pub(crate) release: String,
    /// `publish.lua`: many events in one command, sent with `EVAL` inside pipelines.
    pub(crate) publish: &'static str,
    pub(crate) claim: Script,
    pub(crate) renew: Script,
    pub(crate) promote: Script,
    pub(crate) reap: Script,
    pub(crate) reconcile: Script,
    pub(crate) depth: Script,
    pub(crate) paused: Script,
    pub(crate) set_if_unchanged: Script,
}

impl Scripts {
    /// Loads every script.
    pub(crate) fn load() -> Self {
        Self {
            enqueue: fair(include_str!("scripts/enqueue.lua")),
            release: fair(include_str!("scripts/release.lua")),
            publish: include_str!("scripts/publish.lua"),
            claim: Script::new(&fair(include_str!("scripts/claim.lua"))),
            renew: Script::new(include_str!("scripts/renew.lua")),
            promote: Script::new(&fair(include_str!("scripts/promote.lua"))),
            reap: Script::new(&fair(include_str!("scripts/reap.lua"))),
            reconcile: Script::new(&fair(include_str!("scripts/reconcile.lua"))),
            depth: Script::new(&fair(include_str!("scripts/depth.lua"))),
            paused: Script::new(&fair(include_str!("scripts/paused.lua"))),
            set_if_unchanged: Script::new(SET_IF_UNCHANGED),
        }
    }
}

/// Sets `KEYS[1]` to `ARGV[2]` if it holds `ARGV[1]`; returns 1 if it did.
const SET_IF_UNCHANGED: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

/// `script` with the fair-order functions it calls.
fn fair(script: &str) -> String {
    format!("{}\n{script}", include_str!("scripts/fair.lua"))
}
