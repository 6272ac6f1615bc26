"""What an ingest's watermark may claim, against a model of its event loop: requests arrive in
sockets at any moment, the loop reads them late or stalls, and no watermark may claim a moment
after the arrival of a request not yet handed to the producer."""

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from attendance.watermarks import Stamps


@dataclass
class Request:
    arrived: float
    stamp: int | None = None  # read by the loop, its stamp open
    handed_over: bool = False


steps = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.integers(0, 0)),
        # time passing, the loop running or stalled: a millisecond to a long stop
        st.tuples(st.just("pass"), st.integers(1, 5000)),
        st.tuples(st.just("read"), st.integers(0, 30)),
        st.tuples(st.just("hand over"), st.integers(0, 30)),
        # a watermark whose loop turns take this many milliseconds
        st.tuples(st.just("watermark"), st.integers(0, 50)),
    ),
    max_size=120,
)


@given(steps, st.booleans())
def test_no_claim_passes_a_request_not_handed_over(
    program: list[tuple[str, int]], late: bool
) -> None:
    now = 1_000.0
    stamps = Stamps(now)
    requests: list[Request] = []
    claims: list[float] = []

    def read(request: Request) -> None:
        request.stamp = stamps.open()

    for step, n in program:
        waiting = [r for r in requests if r.stamp is None]
        in_hand = [r for r in requests if r.stamp is not None and not r.handed_over]
        if step == "arrive":
            requests.append(Request(now))
        elif step == "pass":
            now += n / 1000
        elif step == "read" and waiting:
            read(waiting[n % len(waiting)])
        elif step == "hand over" and in_hand:
            request = in_hand[n % len(in_hand)]
            request.handed_over = True
            assert request.stamp is not None
            stamps.close(request.stamp)
        elif step == "watermark":
            sampled = now
            # The turns read every request whose bytes were there before the sample; one that
            # arrives during them may be read in them too, or not.
            for request in waiting:
                read(request)
            now += n / 1000
            arriving = Request(now)
            requests.append(arriving)
            if late:
                read(arriving)
            claim = stamps.tick(sampled)
            unsent = [r.arrived for r in requests if not r.handed_over]
            assert claim <= min(unsent, default=claim)
            assert claim <= sampled
            claims.append(claim)
    assert claims == sorted(claims)  # the clock never goes back


def test_a_watermark_with_nothing_in_hand_claims_its_sample() -> None:
    stamps = Stamps(10.0)
    assert stamps.tick(11.0) == 11.0
    held = stamps.open()  # read after the tick at 11: it arrived after 11
    assert stamps.tick(12.0) == 11.0
    assert stamps.tick(13.0) == 11.0
    stamps.close(held)
    stamps.close(held)  # twice is once
    assert stamps.tick(14.0) == 14.0
