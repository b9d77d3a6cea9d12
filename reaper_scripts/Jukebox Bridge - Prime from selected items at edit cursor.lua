-- @description Jukebox Bridge: prime from selected items (or the time selection) at the edit cursor
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Uses each selected audio item (cut to the time selection, if any; with no item selected, the items
--   on the selected tracks under the time selection) as a prompt and puts the new material at the edit cursor.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.prime_selected(title)
