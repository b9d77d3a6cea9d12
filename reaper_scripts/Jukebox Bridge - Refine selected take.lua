-- @description Jukebox Bridge: refine the selected draft takes to full quality
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
-- @about
--   Renders each selected item's active take, a draft the engine rendered (quality draft), again at full quality
--   from the draft's own saved codes, and adds the result as a new take of the item, lined up with the draft.
--   Installed with "Jukebox Bridge - Settings.lua"; see reaper_scripts/README.md.

local script_path = debug.getinfo(1, "S").source:gsub("^@", "")
package.path = (script_path:match("^(.*[/\\])") or "") .. "lib/?.lua;" .. package.path
local jukebox = require("jukebox_bridge")
local title = jukebox.script_title(script_path)
jukebox.refine_selected(title)
