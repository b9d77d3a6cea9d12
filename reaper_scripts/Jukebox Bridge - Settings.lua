-- @description Jukebox Bridge: continue, prime, re-render and generate audio with OpenAI Jukebox (settings and all actions)
-- @version 0.2.0
-- @author Jukebox Bridge
-- @changelog
--   One job runner follows every job (no "already running" prompt) and cancels its jobs when closed;
--   takes land in the project they came from; bars follow the tempo and time-signature map; sections
--   are resolved, stretch markers and playrate envelopes refused (glue first); job files in REAPER's
--   resource folder; no console window per job on Windows; dead clients are noticed.
-- @about
--   # Jukebox Bridge for REAPER
--
--   Drives a local Jukebox Bridge engine from REAPER. Select audio items and run an action: the
--   engine continues them, primes from them, or re-renders them in another artist and genre, and
--   the finished audio lands on the timeline (continuations right after the source item, primes
--   and generations at the edit cursor, re-renders as new takes), one undo point per job.
--
--   Needs the Jukebox Bridge engine running on this computer (`jukebox-bridge serve`) and its
--   command-line client `jukebox-bridge`; no extension or third-party Lua module. This action
--   edits the engine address, the client's path and the defaults for labels, takes, quality and
--   target track.
--
--   The official Jukebox weights, and audio made with them, are licensed CC BY-NC 4.0
--   (non-commercial use only).
-- @provides
--   [main] .
--   [main] Jukebox Bridge - Continue selected items.lua
--   [main] Jukebox Bridge - Prime from selected items at edit cursor.lua
--   [main] Jukebox Bridge - Re-render selected items in artist and genre.lua
--   [main] Jukebox Bridge - Refine selected take.lua
--   [main] Jukebox Bridge - Generate from labels at edit cursor.lua
--   [main] Jukebox Bridge - Cancel last job.lua
--   [main] Jukebox Bridge - Cancel all jobs.lua
--   [main] Jukebox Bridge - Job runner.lua
--   [nomain] lib/jukebox_bridge.lua
--   [nomain] lib/jukebox_bridge/*.lua

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.edit_settings(title)
