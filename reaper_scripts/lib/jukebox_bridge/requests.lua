-- @description Jukebox Bridge library: request fields for the engine's render verbs
-- @version 0.2.0
-- @author Jukebox Bridge
-- @noindex
--
-- Field names and meanings follow docs/osc-protocol.md ("Render fields"). Integers are sent as
-- integers, seconds as floats, and empty settings are left out so the engine uses its defaults.
-- A length in bars becomes seconds here, through the project's tempo and time-signature map at the
-- point where the new material starts (the engine's own `bars` field assumes 4/4 at one tempo).

local selection = require("jukebox_bridge.selection")

local M = {}

local MAX_CHANNELS = 2 -- Jukebox is mono; stereo renders are the mono signal on both channels
local GENERATE_CHANNELS = 2
M.MAX_SECONDS = 300 -- the engine's largest `seconds`

local function nonempty(text)
  if text == nil or text == "" then
    return nil
  end
  return text
end

local function sampling_fields(cfg, ctx, at)
  return {
    artist = nonempty(cfg.artist),
    genre = nonempty(cfg.genre),
    temperature = cfg.temperature > 0 and cfg.temperature + 0.0 or nil,
    adherence = cfg.adherence >= 0 and cfg.adherence + 0.0 or nil,
    takes = math.tointeger(cfg.takes),
    quality = cfg.quality,
    tempo = selection.tempo_at(ctx.proj, at) + 0.0,
    sample_rate = math.tointeger(ctx.sample_rate),
  }
end

-- Seconds to generate from `at`: the bars setting through the tempo map, else the seconds setting.
-- Returns nil and a sentence when the bars last longer than the engine renders.
function M.length_at(cfg, ctx, at)
  if cfg.bars > 0 then
    local seconds = selection.bars_to_seconds(ctx.proj, at, cfg.bars)
    if seconds > M.MAX_SECONDS + 1e-6 then
      return nil, string.format("%s bars from %s last %.1f s; the engine renders at most %d s. "
        .. "Set fewer bars in Jukebox Bridge - Settings.", tostring(cfg.bars), reaper.format_timestr(at, ""),
        seconds, M.MAX_SECONDS)
    end
    return seconds
  end
  return cfg.seconds + 0.0
end

local function clamp_channels(n)
  return math.max(1, math.min(MAX_CHANNELS, math.tointeger(n) or MAX_CHANNELS))
end

-- continue, prime, rerender or refine of one region; `at` is where the new material starts on the timeline.
-- Returns the fields, or nil and a sentence.
function M.for_region(verb, region, cfg, ctx, at)
  if verb == "refine" then
    -- the whole draft take: the engine takes labels, seed, knobs, rate and position from the draft itself
    return { source = region.source }
  end
  local fields = sampling_fields(cfg, ctx, at)
  fields.source = region.source
  fields.start = region.start + 0.0
  fields.length = region.length + 0.0
  fields.position = region.position + 0.0
  fields.channels = clamp_channels(region.channels)
  if verb ~= "rerender" then -- a re-render always keeps the region's length
    local seconds, problem = M.length_at(cfg, ctx, at)
    if not seconds then
      return nil, problem
    end
    fields.seconds = seconds + 0.0
  end
  return fields
end

-- generate at a timeline position from labels (and lyrics).
function M.for_generate(cfg, ctx, position, lyrics)
  local fields = sampling_fields(cfg, ctx, position)
  local seconds, problem = M.length_at(cfg, ctx, position)
  if not seconds then
    return nil, problem
  end
  fields.position = position + 0.0
  fields.channels = GENERATE_CHANNELS
  fields.lyrics = nonempty(lyrics)
  fields.seconds = seconds + 0.0
  return fields
end

return M
