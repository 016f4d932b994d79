// How the emulated cluster (cluster.ts) runs a rendered pod: as a podman container of the image (the default,
// and the only form CI accepts), or, where containers cannot run, as a child process of this checkout's
// `node dist/cli/main.js` (processes.ts). Both take the same spec, built by cluster.ts from the rendered
// manifests, so the scenario in chart-e2e.test.ts is one walk with two runners.
//
//   MIRRORFARM_E2E_MODE=container   containers, or fail saying why they cannot run
//   MIRRORFARM_E2E_MODE=process     processes, even where containers could run
//   (unset)                         containers when possible, else processes, saying why
//   MIRRORFARM_REQUIRE_CONTAINERS=1 (CI) containers or fail; never processes
import { CONTAINERS_REQUIRED, homeDir, leftoverContainers, removeAllContainers, runContainer, volumeDir, whyNoContainers, type Container, type ContainerSpec } from './podman.js';
import { ProcessRuntime, whyNoProcesses } from './processes.js';

export interface PodSpec extends ContainerSpec {
  /** The container's `command` (replaces the image's entrypoint), e.g. a helm test hook's. */
  command?: string[];
}

export interface PodRuntime {
  readonly form: 'containers' | 'processes';
  /** One line for the test output: what runs the pods and how that differs from a cluster. */
  readonly description: string;
  run(spec: PodSpec): Promise<Container>;
  /** A Secret or ConfigMap volume: the files, as the pod's user may read them. */
  volumeDir(files: Record<string, string | Buffer>, fsGroup: number, mode: number): string;
  /** A PersistentVolume for a pod's HOME, writable by the pod's user. */
  homeDir(uid: number, gid: number): string;
  /** Removes everything still running. */
  removeAll(): Promise<void>;
  /** What is still running (names or pids with command lines); empty after removeAll. */
  leftovers(): Promise<string[]>;
}

const podman: PodRuntime = {
  form: 'containers',
  description: 'pods run as podman containers of the image',
  run: (spec) => runContainer(spec.command ? { ...spec, entrypoint: JSON.stringify(spec.command) } : spec),
  volumeDir,
  homeDir,
  removeAll: removeAllContainers,
  leftovers: () => leftoverContainers(''),
};

/** The runtime this machine and the environment call for, or an error that says why none fits. */
export function selectRuntime(): PodRuntime {
  const mode = process.env.MIRRORFARM_E2E_MODE ?? '';
  if (!['', 'container', 'process'].includes(mode)) throw new Error(`MIRRORFARM_E2E_MODE=${mode}: use container or process`);
  if (mode === 'process') {
    if (CONTAINERS_REQUIRED) throw new Error('MIRRORFARM_E2E_MODE=process contradicts MIRRORFARM_REQUIRE_CONTAINERS=1 (CI runs the container form)');
    return processes('MIRRORFARM_E2E_MODE=process');
  }
  const why = whyNoContainers();
  if (!why) return podman;
  if (CONTAINERS_REQUIRED) throw new Error(`MIRRORFARM_REQUIRE_CONTAINERS=1 but containers cannot run: ${why}`);
  if (mode === 'container') throw new Error(`MIRRORFARM_E2E_MODE=container but containers cannot run: ${why}`);
  return processes(`containers cannot run here: ${why}`);
}

function processes(reason: string): PodRuntime {
  const missing = whyNoProcesses();
  if (missing) throw new Error(`the pods would run as processes (${reason}), but ${missing}`);
  return new ProcessRuntime(reason);
}
