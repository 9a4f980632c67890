-- Argo CD health check for OpenKruiseGame GameServers (game.kruise.io/v1alpha1),
-- the value of argocd-cm key resource.customizations.health.game.kruise.io_GameServer
-- (argocd-cm-health-patch.yaml holds this file verbatim; manifests/README.md says how
-- to install it and what each status means).
--
-- Written after:
--   argoproj/argo-cd util/lua/lua.go: Argo CD runs this as a chunk with the live
--     object in the global `obj` (JSON numbers as Lua numbers, null as nil) and reads
--     the returned table {status=..., message=...}. Only the base, table and package
--     libraries and a safe os (time, date) are loaded, so this uses no string or math
--     function.
--   argoproj/argo-cd resource_customizations/game.kruise.io/GameServer/health.lua:
--     the check Argo CD bundles, which this key replaces (deletion and the
--     KruisePodReady condition are kept from it).
--   argoproj/gitops-engine pkg/health/health_pod.go: a game server's pod restarts
--     always, so a container waiting for an Err*, *Error or *BackOff reason, or a
--     not-Ready pod whose container terminated before, is Degraded.
--   openkruise/kruise-game apis/v1alpha1/gameserver_types.go: GameServerStatus
--     (currentState, podStatus, conditions) and the opsStates.
--
-- Statuses:
--   Healthy      currentState Ready (whatever its opsState: Allocated, WaitToBeDeleted...).
--   Progressing  being deleted; no status yet; Creating, Updating, Deleting, or a
--                lifecycle hook state; NotReady while its containers start.
--   Degraded     crash-looping (CrashLoopBackOff, or NotReady after a container
--                exited), an image that cannot be pulled (ErrImagePull,
--                ImagePullBackOff), any other container error; currentState Crash;
--                condition KruisePodReady False.
--   Unknown      currentState Unknown.

-- kubelet's waiting reasons that end in Error or BackOff (health_pod.go matches the
-- suffixes; without the string library they are listed). Reasons starting with Err
-- (ErrImagePull, ErrImageNeverPull) are matched by comparison below.
local FAILING = {
  CrashLoopBackOff = true,
  ImagePullBackOff = true,
  ImageInspectError = true,
  CreateContainerConfigError = true,
  CreateContainerError = true,
  PreCreateHookError = true,
  PreStartHookError = true,
  PostStartHookError = true,
  RunContainerError = true,
  RunInitContainerError = true,
  KillContainerError = true,
  VerifyNonRootError = true,
  CreatePodSandboxError = true,
  ConfigPodSandboxError = true,
  KillPodSandboxError = true,
}

local function failing(reason)
  if type(reason) ~= "string" then
    return false
  end
  return FAILING[reason] == true or (reason >= "Err" and reason < "Ers")
end

local function health(status, message)
  return {status = status, message = message}
end

local function times(n)
  if n == 1 then
    return "1 time"
  end
  return n .. " times"
end

local meta = obj.metadata or {}
if meta.deletionTimestamp ~= nil then
  local message = "Pending deletion"
  if meta.finalizers ~= nil and #meta.finalizers > 0 then
    message = message .. "; blocked by finalizers: " .. table.concat(meta.finalizers, ", ")
  end
  return health("Progressing", message)
end

local status = obj.status or {}
local state = status.currentState
if state == nil or state == "" then
  return health("Progressing", "Waiting for the first status: the pod is being created")
end

local pod = status.podStatus or {}
local containers = {}
for _, c in ipairs(pod.initContainerStatuses or {}) do
  table.insert(containers, c)
end
for _, c in ipairs(pod.containerStatuses or {}) do
  table.insert(containers, c)
end

-- Why each failing container fails, and whether one exited before.
local problems = {}
local exited = {}
for _, c in ipairs(containers) do
  local restarts = tonumber(c.restartCount) or 0
  local waiting = c.state and c.state.waiting
  if waiting ~= nil and failing(waiting.reason) then
    local text = "container " .. tostring(c.name) .. " " .. waiting.reason
    if restarts > 0 then
      text = text .. ", restarted " .. times(restarts)
    end
    if waiting.message ~= nil and waiting.message ~= "" then
      text = text .. " (" .. waiting.message .. ")"
    end
    table.insert(problems, text)
  end
  local last = c.lastState and c.lastState.terminated
  if last ~= nil and c.ready ~= true then
    local text = "container " .. tostring(c.name) .. " exited with code " ..
      tostring(last.exitCode or "?")
    if last.reason ~= nil then
      text = text .. " (" .. last.reason .. ")"
    end
    table.insert(exited, text .. ", restarted " .. times(restarts))
  end
end

local function kruisePodReadyFalse()
  for _, c in ipairs(pod.conditions or {}) do
    if c.type == "KruisePodReady" and c.status ~= "True" then
      return true
    end
  end
  return false
end

-- OKG's PodNormal condition explains a pod that is not normal.
local function podNormalMessage()
  for _, c in ipairs(status.conditions or {}) do
    if c.type == "PodNormal" and c.status ~= "True" and c.message ~= nil then
      return c.message
    end
  end
  return nil
end

if #problems > 0 then
  return health("Degraded", state .. ": " .. table.concat(problems, "; "))
end

if state == "Crash" then
  local why = pod.message or podNormalMessage()
  if why == nil and #exited > 0 then
    why = table.concat(exited, "; ")
  end
  return health("Degraded", "Crash: the pod failed" .. (why and (": " .. why) or ""))
end

if state == "NotReady" then
  if #exited > 0 then
    return health("Degraded", "NotReady: " .. table.concat(exited, "; "))
  end
  if kruisePodReadyFalse() then
    return health("Degraded", "NotReady: pod condition KruisePodReady is not True")
  end
  local why = podNormalMessage()
  return health("Progressing", "NotReady: containers started, waiting for them to be Ready" ..
    (why and (" (" .. why .. ")") or ""))
end

if state == "Ready" then
  if kruisePodReadyFalse() then
    return health("Degraded", "Ready, but pod condition KruisePodReady is not True")
  end
  local message = "Ready"
  local ops = (obj.spec or {}).opsState
  if ops ~= nil and ops ~= "" and ops ~= "None" then
    message = message .. ", opsState " .. ops
    if ops == "WaitToBeDeleted" then
      message = message .. " (deleted first when its set scales down)"
    elseif ops == "Kill" then
      message = message .. " (about to be deleted)"
    end
  end
  if status.players ~= nil and status.maxPlayers ~= nil then
    message = message .. "; " .. status.players .. " of " .. status.maxPlayers .. " players"
  end
  return health("Healthy", message)
end

if state == "Unknown" then
  return health("Unknown", "currentState Unknown: the node or pod cannot be observed" ..
    (podNormalMessage() and (" (" .. podNormalMessage() .. ")") or ""))
end

-- Creating, Updating, Deleting, PreDelete, PreUpdate and any later state.
local message = state
local why = podNormalMessage()
if why ~= nil then
  message = message .. " (" .. why .. ")"
elseif pod.phase ~= nil then
  message = message .. " (pod " .. pod.phase .. ")"
end
return health("Progressing", message)
