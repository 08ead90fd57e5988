-- Argo CD health check for airollout.dev/AIRollout: the value of
-- resource.customizations.health.airollout.dev_AIRollout in argocd-cm (docs/argocd-health.md).
-- It reads the kstatus conditions the controller writes (Ready, Reconciling, Stalled) and
-- uses only what Argo CD gives a custom health script: base and table functions, no string
-- library.
local hs = { status = "Progressing", message = "Waiting for the controller" }

-- No status yet, or a status written for an older spec: the controller has not seen this edit.
local status = obj.status
if type(status) ~= "table" or type(status.observedGeneration) ~= "number" then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if type(generation) == "number" and status.observedGeneration < generation then
  return hs
end

local function condition(kind)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type == kind then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- The condition's message, or its reason when the message is empty.
local function say(c, fallback)
  if type(c.message) == "string" and c.message ~= "" then
    return c.message
  end
  if type(c.reason) == "string" and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

-- A spec the controller cannot run is Degraded even when the rollout is Paused on it.
local invalidSpec = { InvalidSpec = true, InvalidAnalysis = true, InvalidQuery = true }

local stalled = condition("Stalled")
if isTrue(stalled) then
  local degraded = condition("Degraded")
  local broken = invalidSpec[stalled.reason] or (isTrue(degraded) and invalidSpec[degraded.reason])
  if status.phase == "Paused" and not broken then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = say(stalled, "Stalled")
  return hs
end

local ready = condition("Ready")
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = say(ready, "Ready")
  return hs
end

local reconciling = condition("Reconciling")
if isTrue(reconciling) then
  hs.message = say(reconciling, "Reconciling")
  return hs
end

if type(status.message) == "string" and status.message ~= "" then
  hs.message = status.message
elseif type(status.phase) == "string" then
  hs.message = status.phase
end
return hs
