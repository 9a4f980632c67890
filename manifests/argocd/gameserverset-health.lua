-- Argo CD health check for OpenKruiseGame GameServerSets (game.kruise.io/v1alpha1),
-- the value of argocd-cm key resource.customizations.health.game.kruise.io_GameServerSet
-- (argocd-cm-health-patch.yaml holds this file verbatim; manifests/README.md says how
-- to install it and what each status means).
--
-- Written after:
--   argoproj/argo-cd util/lua/lua.go: Argo CD runs this as a chunk with the live
--     object in the global `obj` (JSON numbers as Lua numbers, null as nil) and reads
--     the returned table {status=..., message=...}. Only the base, table and package
--     libraries and a safe os (time, date) are loaded, so this uses no string or math
--     function.
--   argoproj/argo-cd resource_customizations/game.kruise.io/GameServerSet/health.lua:
--     the check Argo CD bundles, which this key replaces (deletion, paused, partition
--     are kept from it).
--   argoproj/gitops-engine pkg/health/health_statefulset.go: a GameServerSet runs an
--     Advanced StatefulSet, so the same steps: generation observed, Ready servers
--     against spec.replicas, OnDelete is Healthy once Ready.
--   openkruise/kruise-game apis/v1alpha1/gameserverset_types.go: GameServerSetStatus.
--
-- Statuses:
--   Progressing  deleting; no status yet; spec not observed yet; servers being created;
--                servers on the current template not Ready; fewer Ready servers than
--                spec.replicas; a rolling update replacing servers; WaitToBeDeleted
--                servers being removed after spec.replicas was lowered.
--   Suspended    updateStrategy.rollingUpdate.paused, or a partition holding servers on
--                older templates.
--   Healthy      spec.replicas servers Ready and every server on the current template
--                Ready. With updateStrategy OnDelete (the seamless release) servers on
--                older templates, Allocated or WaitToBeDeleted ones included, are kept
--                on purpose and do not make the set unhealthy: the message counts them.
--   Degraded     never from this check: the set's status counts servers that are not
--                Ready but cannot tell one still starting from one crash-looping. The
--                GameServer check says Degraded for those (gameserver-health.lua), and
--                this message sends you there.

local function num(v)
  return tonumber(v) or 0
end

local function servers(n)
  if n == 1 then
    return "1 server"
  end
  return n .. " servers"
end

local function onOlder(n)
  if n == 1 then
    return "1 on an older template"
  end
  return n .. " on older templates"
end

local function health(status, message)
  return {status = status, message = message}
end

local meta = obj.metadata or {}
if meta.deletionTimestamp ~= nil then
  local message = "Pending deletion"
  if meta.finalizers ~= nil and #meta.finalizers > 0 then
    message = message .. "; blocked by finalizers: " .. table.concat(meta.finalizers, ", ")
  end
  return health("Progressing", message)
end

local status = obj.status
if status == nil then
  return health("Progressing", "Waiting for the GameServerSet controller to report a status")
end

local generation = num(meta.generation)
local observed = num(status.observedGeneration)
if observed == 0 or observed < generation then
  return health("Progressing", "Waiting for the controller to observe generation " .. generation ..
    " (the status is of generation " .. observed .. ")")
end

local spec = obj.spec or {}
local strategy = spec.updateStrategy or {}
local rolling = strategy.rollingUpdate or {}
local kind = strategy.type
if kind == nil or kind == "" then
  kind = "RollingUpdate"
end

local total = num(status.replicas)
local wanted = tonumber(spec.replicas) or total
local ready = num(status.readyReplicas)
local updated = num(status.updatedReplicas)
local updatedReady = num(status.updatedReadyReplicas)
local older = total - updated
if older < 0 then
  older = 0
end
local toDelete = num(status.waitToBeDeletedReplicas)
local maintaining = num(status.maintainingReplicas)
local readySummary = ready .. " of " .. wanted .. " wanted servers Ready"

if rolling.paused == true then
  return health("Suspended", "Updates are paused (updateStrategy.rollingUpdate.paused): " ..
    updated .. " of " .. total .. " servers run the current template")
end

if total < wanted then
  return health("Progressing", "Creating servers: " .. total .. " of " .. wanted ..
    " exist, " .. ready .. " Ready")
end

if updatedReady < updated then
  return health("Progressing", (updated - updatedReady) .. " of " .. servers(updated) ..
    " on the current template not Ready yet (starting, or failing: a failing GameServer is" ..
    " Degraded and says why); " .. readySummary)
end

if ready < wanted then
  return health("Progressing", "Waiting for " .. servers(wanted - ready) .. " to be Ready: " ..
    readySummary .. "; " .. onOlder(total - ready) .. " not Ready")
end

if total > wanted and toDelete > 0 then
  return health("Progressing", "Scaling down to " .. wanted .. ": " .. total .. " servers, " ..
    toDelete .. " WaitToBeDeleted go first")
end

if kind ~= "OnDelete" then
  local partition = num(rolling.partition)
  local target = wanted - partition
  if updated < target then
    return health("Progressing", "Rolling update (" .. kind .. "): " .. updated .. " of " ..
      target .. " servers run the current template; " .. onOlder(older) .. " to replace")
  end
  if partition > 0 and older > 0 then
    return health("Suspended", "Partition " .. partition .. " holds " .. onOlder(older) ..
      ": " .. updated .. " of " .. total .. " servers run the current template;" ..
      " lower updateStrategy.rollingUpdate.partition to go on")
  end
end

if total == 0 then
  return health("Healthy", "Scaled to zero: no servers")
end

local message
if ready == wanted then
  message = "All " .. servers(wanted) .. " Ready"
else
  message = ready .. " servers Ready for " .. wanted .. " replicas"
end
if older == 0 then
  message = message .. ", all on the current template"
else
  message = message .. ": " .. updated .. " on the current template, " .. onOlder(older)
  if kind == "OnDelete" then
    message = message .. " (OnDelete keeps them until they are deleted)"
  end
end
if toDelete > 0 then
  message = message .. "; " .. toDelete ..
    " WaitToBeDeleted (deleted first when spec.replicas is lowered)"
end
if maintaining > 0 then
  message = message .. "; " .. maintaining .. " Maintaining"
end
return health("Healthy", message)
