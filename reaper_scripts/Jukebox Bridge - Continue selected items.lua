-- @description Jukebox Bridge: continue selected items
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Continues each selected audio item with new material from the engine, as a new item that starts
--   exactly where the source item ends (one undo point per finished job).
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.continue_selected(title)
