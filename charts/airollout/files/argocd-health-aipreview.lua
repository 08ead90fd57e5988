-- Argo CD health check for airollout.dev/AIPreview: the value of
-- resource.customizations.health.airollout.dev_AIPreview in argocd-cm (docs/argocd-health.md,
-- examples/gitops/argocd/argocd-cm.yaml). It reads status.phase and the kstatus conditions
-- the controller writes (Ready, Reconciling, Stalled) and uses only what Argo CD gives a
-- custom health script: base and table functions, no string library. Its helpers (condition,
-- isTrue, say) repeat argocd-health.lua's on purpose: Argo CD runs each script standalone,
-- with no require, so the two cannot share code.
--
-- Expired (the ttl passed, the stack is destroyed, the object kept) is Suspended, not Degraded:
-- nothing failed, the preview did what its spec asked and waits for a person, who deletes it
-- or edits spec.ttl to end later (which stands it up again). Degraded would mark every
-- pull request's Application that outlives its preview's ttl as broken, and fire Argo CD's
-- on-health-degraded notifications for it.
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

local function nonEmpty(s)
  return type(s) == "string" and s ~= ""
end

-- The condition's message, else its reason, else the status message, else the phase.
local function say(c, fallback)
  if c ~= nil and nonEmpty(c.message) then
    return c.message
  end
  if c ~= nil and nonEmpty(c.reason) then
    return c.reason
  end
  if nonEmpty(status.message) then
    return status.message
  end
  return fallback
end

local phase = status.phase
local stalled = condition("Stalled")

-- Expired before the Stalled rule: the controller marks an expired preview Stalled (reason
-- Expired, so kstatus and Flux read Failed at once), but for Argo CD it is Suspended, above.
if phase == "Expired" then
  hs.status = "Suspended"
  hs.message = say(isTrue(stalled) and stalled or nil, "Expired")
  return hs
end

-- Failed: stalled (only an edit helps) or retried with backoff; either way it does not serve.
if isTrue(stalled) or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = say(isTrue(stalled) and stalled or nil, "Failed")
  return hs
end

-- Healthy only when the phase and the Ready condition agree that it serves.
local ready = condition("Ready")
if phase == "Ready" and isTrue(ready) then
  hs.status = "Healthy"
  hs.message = say(ready, "Ready")
  return hs
end

-- Pending, Provisioning, Terminating, or anything this script does not know: not there yet.
local reconciling = condition("Reconciling")
hs.message = say(isTrue(reconciling) and reconciling or nil, nonEmpty(phase) and phase or "Reconciling")
return hs
