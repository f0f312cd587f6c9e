"""A join that heals: a consumer whose group join or sync has not completed within a bound acts.

Tansu 0.6 keeps a group's leader in its "forming" state even after that leader left
(``tansu-broker/src/coordinator/group/administrator.rs``: a LeaveGroup while forming removes the
member but not ``state.leader``, and only a missed heartbeat of a *present* member clears it).
After two members leave follower-then-leader, every new member joins as a follower of the
departed leader and its SyncGroup is answered ``REBALANCE_IN_PROGRESS`` for ever; leaving and
rejoining with a fresh member id changes nothing, as the leader stays named.

What heals it: the JoinGroup answer names the leader. A member that has not synced within the
bound asks which members the group has (DescribeGroups); if the named leader is none of them,
it joins under the departed leader's id: Tansu takes it as the leader, sends it the members,
and its assignment forms the group. On a broker that forgets a departed member (Apache Kafka),
the bound is never reached; were it reached, the unknown id is refused (``UNKNOWN_MEMBER_ID``)
and aiokafka joins afresh: nothing worse than one more join.

Exactly one member takes that id. The members left behind joined in the same rebalance, and
Tansu answers their joins together, so their bounds run out within milliseconds of each other:
were each to take the id, two processes would be one member to the broker, each the leader of
a group of one, each assigned every partition (or, their metadata differing, each join of one
fencing the other's generation: a group rebalancing for ever). So only the member whose own id
is the first of the described members takes it (one the broker does not list takes it unless a
listed id comes before its own); the others wait a bound, by when it leads.
And it joins under the leader's id *before* it leaves under its own, then joins once more
(the group without its old id): at every moment a member that asks sees its old id or the
leader's, never a group where it alone would be first.

If that does not heal it either (``give_up_after`` attempts), the member gives up: the process
logs why and exits with its own code (``EXIT_GROUP_STUCK``) so that its supervisor restarts it.

The watch wraps the consumer's client ``send`` (aiokafka internals, listed in
``tests/unit/test_private_apis.py``): it sees each JoinGroup and SyncGroup the coordinator sends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.api import Request, Response
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest

log = logging.getLogger(__name__)

EXIT_GROUP_STUCK = 78
"""The process exits with this code when its group join never completed, however it tried."""

Send = Callable[..., Awaitable[Response]]
"""aiokafka's ``AIOKafkaClient.send(node_id, request, *, group=...)``."""


class _Client(Protocol):
    send: Send


class WatchedConsumer(Protocol):
    """What the watch wraps of an AIOKafkaConsumer: its client's ``send`` (aiokafka internals)."""

    _client: _Client


class JoinWatch:
    """Watches one consumer's group join and heals a join that does not complete in time.

    ``bound_s``: how long a join may go on without a completed sync (a few session timeouts).
    ``on_heal(action)`` counts each act (``adopt_leader``; ``waiting``: the named leader is a
    member, or another member left behind takes its id, so nothing is taken and one more bound
    runs; ``give_up``: ``give_up_after`` adoptions did not complete the join);
    ``on_stuck(reason)`` is called once on giving up.
    """

    def __init__(
        self,
        *,
        bound_s: float,
        on_heal: Callable[[str], None] = lambda action: None,
        on_stuck: Callable[[str], None] = lambda reason: None,
        give_up_after: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bound_s = bound_s
        self._on_heal = on_heal
        self._on_stuck = on_stuck
        self._give_up_after = give_up_after
        self._clock = clock
        self._joining_since: float | None = None
        self._leader = ""
        self._member = ""
        self.heals = 0
        """Adoptions of a departed leader's id since the last completed sync."""
        self.gave_up = False

    def install(self, consumer: WatchedConsumer) -> None:
        """Wrap ``consumer``'s client (an AIOKafkaConsumer, before or after start)."""
        client = consumer._client
        original: Send = client.send

        async def send(node_id: int, request: Request, **kw: object) -> Response:
            return await self.send(original, node_id, request, **kw)

        client.send = send

    @property
    def joined(self) -> bool:
        """No join under way: the last one completed (or none began)."""
        return self._joining_since is None

    async def send(self, original: Send, node_id: int, request: Request, **kw: object) -> Response:
        if isinstance(request, JoinGroupRequest):
            return await self._join(original, node_id, request, **kw)
        response = await original(node_id, request, **kw)
        if isinstance(request, SyncGroupRequest) and response.error_code == 0:
            if self.heals:
                log.warning("group %s joined after %d heal(s)", request._group, self.heals)
            self._joining_since = None
            self.heals = 0
        return response

    async def _join(
        self, original: Send, node_id: int, request: JoinGroupRequest, **kw: object
    ) -> Response:
        """The bound runs over answered joins only: a broker that does not answer (an outage)
        is no group that cannot form, and starts the bound again."""
        now = self._clock()
        since = self._joining_since
        left_behind = ""  # the member's own id, once it joins under the departed leader's
        if since is not None and now - since >= self.bound_s and not self.gave_up:
            try:
                left_behind = await self._act(original, node_id, request, now, **kw)
            except Exception:  # the watch never breaks the join it watches
                log.exception("the join watch of group %s failed; the join goes on", request._group)
        try:
            response = await original(node_id, request, **kw)
            if left_behind and response.error_code == 0:
                response = await self._leave_behind(
                    original, node_id, request, response, left_behind, **kw
                )
        except Exception:
            self._joining_since = None
            raise
        if response.error_code == 0:
            self._leader, self._member = response.leader_id, response.member_id
            if self._joining_since is None:
                self._joining_since = now
        return response

    async def _act(
        self, original: Send, node_id: int, request: JoinGroupRequest, now: float, **kw: object
    ) -> str:
        """Give up, wait, or set ``request`` to join under the departed leader's id; returns the
        member's own id when it does (to leave once the leader's id is a member), else ""."""
        group = request._group
        waited = now - self._joining_since if self._joining_since is not None else 0.0
        if self.heals >= self._give_up_after:
            self.gave_up = True
            reason = (
                f"the join of group {group} did not complete in {waited:.0f} s "
                f"(bound {self.bound_s:g} s) after {self.heals} heal(s) as its departed leader "
                f"{self._leader}; exiting so that the process is restarted"
            )
            log.error("%s", reason)
            self._on_heal("give_up")
            self._on_stuck(reason)
            return ""
        self._joining_since = now  # the next bound runs from this act
        members = (
            None
            if not self._leader or self._leader == self._member
            else await self._members(original, node_id, group, **kw)
        )
        if members is None or self._leader in members:
            # A live leader re-forms the group (Tansu drops one that stops heartbeating): no
            # id is taken, and waiting is no failure that makes the member give up.
            log.warning(
                "the join of group %s did not complete in %.0f s (bound %g s); its leader %s "
                "is a member: waiting one more bound",
                group,
                waited,
                self.bound_s,
                self._leader or "(none named)",
            )
            self._on_heal("waiting")
            return ""
        if first := min((m for m in members if m < self._member), default=""):
            # Another member left behind takes the leader's id (the first by id; every member
            # that asks now names the same one): two taking it would be one member twice. A
            # member the broker does not list acts as the first, as a lone member does.
            log.warning(
                "the join of group %s did not complete in %.0f s (bound %g s): its leader %s "
                "left, and member %s of %s takes its id, not this one (%s): waiting one more "
                "bound",
                group,
                waited,
                self.bound_s,
                self._leader,
                first,
                sorted(members),
                self._member,
            )
            self._on_heal("waiting")
            return ""
        self.heals += 1
        log.warning(
            "the join of group %s did not complete in %.0f s (bound %g s): member %s follows "
            "leader %s, which never assigns (a broker that kept a departed leader, as Tansu "
            "does); joining again as that leader, then leaving as itself",
            group,
            waited,
            self.bound_s,
            self._member,
            self._leader,
        )
        own = self._member  # left once the leader's id is a member: see _leave_behind
        request._member_id = self._leader
        self._on_heal("adopt_leader")
        return own

    async def _leave_behind(
        self,
        original: Send,
        node_id: int,
        request: JoinGroupRequest,
        response: Response,
        own: str,
        **kw: object,
    ) -> Response:
        """Joined under the leader's id: leave under its own (``own``) and, if the answer named
        it among the members, join once more so that no partition is assigned to it."""
        group = request._group
        if response.member_id != request._member_id:
            return response  # not taken as that id: aiokafka goes on as the answer says
        try:
            await original(node_id, LeaveGroupRequest(group, own), **kw)
        except Exception as e:  # its session runs out instead
            log.info("member %s of group %s did not leave (%r)", own, group, e)
            return response
        if not any(member[0] == own for member in response.members):
            return response  # the broker had dropped it already: the answer stands
        return await original(node_id, request, **kw)

    async def _members(
        self, original: Send, node_id: int, name: str, **kw: object
    ) -> set[str] | None:
        """The ids of the group's members, as the broker describes them; None if it cannot say
        (then no id is taken)."""
        try:
            response = await original(node_id, DescribeGroupsRequest([name]), **kw)
        except Exception as e:  # any failure: the id is not taken
            log.info("members of group %s not described (%r): not acting", name, e)
            return None
        for described in response.groups:
            error_code, described_name, members = described[0], described[1], described[5]
            if described_name == name and error_code == 0:
                return {member[0] for member in members}
        return None
