-- @description Jukebox Bridge library: request fields for the engine's render verbs
-- @version 0.1.0
-- @author Jukebox Bridge
-- @noindex
--
-- Field names and meanings follow docs/osc-protocol.md ("Render fields"). Integers are sent as
-- integers, seconds as floats, and empty settings are left out so the engine uses its defaults.

local M = {}

local MAX_CHANNELS = 2 -- Jukebox is mono; stereo renders are the mono signal on both channels
local GENERATE_CHANNELS = 2

local function nonempty(text)
  if text == nil or text == "" then
    return nil
  end
  return text
end

local function sampling_fields(cfg, ctx)
  return {
    artist = nonempty(cfg.artist),
    genre = nonempty(cfg.genre),
    temperature = cfg.temperature > 0 and cfg.temperature + 0.0 or nil,
    takes = math.tointeger(cfg.takes),
    quality = cfg.quality,
    tempo = ctx.tempo + 0.0,
    sample_rate = math.tointeger(ctx.sample_rate),
  }
end

local function add_length(fields, cfg)
  if cfg.bars > 0 then
    fields.bars = cfg.bars + 0.0
  else
    fields.seconds = cfg.seconds + 0.0
  end
end

local function clamp_channels(n)
  return math.max(1, math.min(MAX_CHANNELS, math.tointeger(n) or MAX_CHANNELS))
end

-- continue, prime or rerender of one region.
function M.for_region(verb, region, cfg, ctx)
  local fields = sampling_fields(cfg, ctx)
  fields.source = region.source
  fields.start = region.start + 0.0
  fields.length = region.length + 0.0
  fields.position = region.position + 0.0
  fields.channels = clamp_channels(region.channels)
  if verb ~= "rerender" then -- a re-render always keeps the region's length
    add_length(fields, cfg)
  end
  return fields
end

-- generate at a timeline position from labels (and lyrics).
function M.for_generate(cfg, ctx, position, lyrics)
  local fields = sampling_fields(cfg, ctx)
  fields.position = position + 0.0
  fields.channels = GENERATE_CHANNELS
  fields.lyrics = nonempty(lyrics)
  add_length(fields, cfg)
  return fields
end

return M
