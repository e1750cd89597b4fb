/**
 * The admin's silent-mode switch (dashboard /admin/dispatch, POST /api/dispatch/release|silence):
 * the switch is written to the settings table with its audit entry first (src/db/dispatch-modes.ts;
 * nothing changes when the store cannot be written), then, on release, the results held for each
 * released target are sent once (sendHeld true) or withheld for good (sendHeld false, the default:
 * a site going live wants the studies from now on, not a burst of old ones in the PACS).
 */
import type { DispatchModes, DispatchModesWithHeld, DispatchSwitch, ReleaseOutcome } from '../../db/dispatch-modes.js';
import type { Dispatcher } from './dispatcher.js';

export interface SwitchUser {
  name: string;
  role: string;
}

export class SilentModeSwitch implements DispatchSwitch {
  constructor(
    private readonly modes: DispatchModes,
    private readonly dispatcher: Dispatcher,
  ) {}

  async view(): Promise<DispatchModesWithHeld> {
    const v = await this.modes.view();
    return { ...v, held: await this.dispatcher.heldCounts(v.targets.map((t) => t.name)).catch(() => ({})) };
  }

  /** Switches one target (or all) live, then sends or withholds what was held for it. */
  async release(
    by: SwitchUser,
    opts: { destination?: string; sendHeld: boolean; via?: 'api' | 'dashboard' },
  ): Promise<{ targets: string[]; released: ReleaseOutcome[] }> {
    const held = await this.dispatcher.heldCounts(
      opts.destination ? [opts.destination] : (await this.modes.view()).targets.map((t) => t.name),
    );
    const targets = await this.modes.set('live', by, opts.destination, {
      sendHeld: opts.sendHeld,
      held,
      ...(opts.via ? { via: opts.via } : {}),
    });
    const released: ReleaseOutcome[] = [];
    for (const t of targets) released.push(await this.dispatcher.releaseHeld(t, opts.sendHeld));
    return { targets, released };
  }

  /** Switches one target (or all) back to silent: from now on its results are held. */
  async silence(by: SwitchUser, opts: { destination?: string; via?: 'api' | 'dashboard' }): Promise<{ targets: string[] }> {
    return { targets: await this.modes.set('silent', by, opts.destination, opts.via ? { via: opts.via } : {}) };
  }
}
