"""What another server process's change means for this one (see `server/cluster.py`).

- A rotated key, a connection made or revoked, an OpenPGP key set: the caches
  forget it (a rotated key's sockets here are closed too).
- A message committed for an agent whose socket is here: the socket catches up
  from the database, in seq order, up to that seq. The event carries no content:
  the database stays the one copy, and a missed event costs only a later
  catch-up, never a message.
- An event frame (a connection request, approved, revoked) for an agent whose
  socket is here: pushed as is.
- A newer socket of an agent on another process: this process's one is replaced
  (4000). Events arrive in commit order, so the last announced socket wins.

While the listener is down every cache is off; once it listens again the caches
start empty and every socket here catches up.
"""

from __future__ import annotations

from mailbox_wire import CloseCode

from .. import cluster
from ..cache import LRU
from .catch_up import TO_THE_END
from .context import Services
from .delivery import Subscriber


class ClusterEvents:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    @property
    def caches(self) -> list[LRU]:  # type: ignore[type-arg]
        svc = self.svc
        return [svc.agents_by_key_hash, svc.connected_pairs, svc.has_openpgp_key]

    def attach(self, channel: cluster.Cluster) -> None:
        channel.on_event(self.handle)
        channel.on_tick(self.sweep)
        channel.on_count(self.svc.request_rate.share)
        channel.on_lost(self.lost)
        channel.on_restored(self.restored)

    def handle(self, event: cluster.Event) -> None:
        svc = self.svc
        kind, fields = event.kind, event.fields
        if kind == cluster.MESSAGE:
            if not event.from_here:
                for entry in fields:
                    agent_id, _, seq = entry.partition(":")
                    svc.hub.committed_elsewhere(agent_id, int(seq))
        elif kind == cluster.FRAME:
            if not event.from_here:
                svc.hub.push_event(fields[0], fields[1])
        elif kind == cluster.SUBSCRIBED:
            self.subscribed(event)
        elif kind == cluster.KEY_CHANGED:
            agent_id, old_hash = fields[0], fields[1]
            svc.agents_by_key_hash.invalidate(old_hash)
            if not event.from_here:
                svc.hub.close_key(agent_id, old_hash)
        elif kind == cluster.PAIR_CHANGED:
            svc.connected_pairs.invalidate((fields[0], fields[1]))
        elif kind == cluster.OPENPGP_CHANGED:
            svc.has_openpgp_key.invalidate(fields[0])

    async def sweep(self) -> None:
        """Each second: any socket here behind its agent's newest message (a notice
        lost between another process's commit and its NOTIFY) catches up."""
        channel = self.svc.cluster
        if channel is None or channel.processes <= 1:
            return  # alone on the database: no other process writes messages to miss
        subscribers = [s for s in self.svc.hub.subscribers() if s.backlog_sent.is_set()]
        if not subscribers:
            return
        async with self.svc.db.hot_connection() as raw:
            rows = await raw.fetch(
                "SELECT id, last_seq FROM agents WHERE id = ANY($1::varchar[])",
                [s.agent_id for s in subscribers],
            )
        for row in rows:
            self.svc.hub.committed_elsewhere(row["id"], int(row["last_seq"]))

    def lost(self) -> None:
        for cache in self.caches:
            cache.switch_off()

    def restored(self) -> None:
        for cache in self.caches:
            cache.switch_on()
        # Whatever was committed while nobody listened: every socket here reads it.
        for subscriber in self.svc.hub.subscribers():
            self.svc.hub.committed_elsewhere(subscriber.agent_id, TO_THE_END)
            self.svc.spawn(announce_socket(self.svc, subscriber))

    # -- sockets ---------------------------------------------------------------------

    def subscribed(self, event: cluster.Event) -> None:
        agent_id, socket_id = event.fields[0], event.fields[1]
        local = self.svc.hub.subscriber(agent_id)
        if local is None:
            return
        if event.from_here:
            # This process replaces its own sockets in the hub; here it only learns
            # that its current one's announcement is committed: any later one is newer.
            if socket_id == local.socket_id:
                local.announced = True
        elif local.announced:
            local.close(CloseCode.REPLACED)


async def announce_socket(svc: Services, subscriber: Subscriber) -> None:
    """Tell the other processes this agent's newest socket is here (PostgreSQL).

    Awaited before `auth_ok`: a socket opened after another one's `auth_ok` is then
    announced after it, so the newer one wins wherever each of them is."""
    if svc.cluster is None:
        return
    await svc.notify(cluster.encode(cluster.SUBSCRIBED, subscriber.agent_id, subscriber.socket_id))


def push_event(svc: Services, agent_id: str, frame: str) -> None:
    """An event frame for the agent's socket, wherever it is."""
    svc.hub.push_event(agent_id, frame)
    if svc.cluster is not None:
        svc.spawn(svc.notify(cluster.encode(cluster.FRAME, agent_id, frame)))
