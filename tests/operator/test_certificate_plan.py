"""The webhook certificate plan: what a fresh install gets, when each thing is renewed, and the
property that matters: at no step does the API server's bundle stop trusting a pair a webhook
pod may still serve."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.durations import parse_duration
from mamori_operator.certificates.plan import (
    Authority,
    CertificateConfigError,
    CertificateState,
    Lifetimes,
    ServingPair,
    certificate_pem,
    certificates_from_pem,
    load_state,
    plan,
    private_key_pem,
    service_hosts,
    signed_by,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
HOSTS = service_hosts("mamori-webhook", "mamori-system")
SHORT = Lifetimes(
    ca_validity=datetime.timedelta(hours=2),
    ca_renew_before=datetime.timedelta(minutes=40),
    serving_validity=datetime.timedelta(minutes=30),
    serving_renew_before=datetime.timedelta(minutes=10),
    overlap=datetime.timedelta(minutes=5),
)


def minutes(n: float) -> datetime.timedelta:
    return datetime.timedelta(minutes=n)


def trusts(bundle: bytes, pair: ServingPair, at: datetime.datetime) -> bool:
    """Would a TLS client with ``bundle`` accept ``pair`` at ``at``?"""
    if not pair.certificate.not_valid_before_utc <= at < pair.not_after:
        return False
    return any(
        ca.not_valid_before_utc <= at < ca.not_valid_after_utc and signed_by(pair.certificate, ca)
        for ca in certificates_from_pem(bundle)
    )


def fresh(at: datetime.datetime = T0, lifetimes: Lifetimes = SHORT) -> CertificateState:
    return plan(CertificateState(), hosts=HOSTS, now=at, lifetimes=lifetimes).state


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90d", datetime.timedelta(days=90), id="days"),
        pytest.param("2160h", datetime.timedelta(hours=2160), id="hours"),
        pytest.param("1h30m", datetime.timedelta(minutes=90), id="hours-and-minutes"),
        pytest.param("1d2h3m4s", datetime.timedelta(days=1, seconds=7384), id="every-unit"),
        pytest.param("45s", datetime.timedelta(seconds=45), id="seconds"),
    ],
)
def test_durations_parse(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "3w", "1m1h", "-5m", "1.5h"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"overlap": minutes(0)}, "greater than 0", id="no-overlap"),
        pytest.param(
            {"serving_renew_before": minutes(30)}, "serving certificate", id="renew-at-birth"
        ),
        pytest.param({"ca_renew_before": minutes(121)}, "CA's renew-before", id="ca-renew-too-big"),
        pytest.param(
            {"ca_renew_before": minutes(20)}, "two overlaps", id="ca-renewal-cannot-complete"
        ),
    ],
)
def test_lifetimes_that_cannot_work_are_refused(
    changes: dict[str, datetime.timedelta], message: str
) -> None:
    lifetimes = Lifetimes(**{**SHORT.__dict__, **changes})
    with pytest.raises(CertificateConfigError, match=message):
        lifetimes.validate()


def test_the_defaults_are_consistent() -> None:
    Lifetimes().validate()


def test_a_fresh_install_gets_a_ca_and_a_serving_pair_for_the_service() -> None:
    result = plan(CertificateState(), hosts=HOSTS, now=T0, lifetimes=SHORT)
    state = result.state
    assert result.changed
    assert state.authority is not None and state.serving is not None
    assert state.previous_ca is None
    assert state.serving.hosts() == frozenset(HOSTS)
    assert signed_by(state.serving.certificate, state.authority.certificate)
    assert state.ca_bundle == state.authority.certificate_pem
    assert trusts(state.ca_bundle, state.serving, T0)
    # Usable at once by a node whose clock runs a little behind.
    assert trusts(state.ca_bundle, state.serving, T0 - minutes(4))


def test_nothing_changes_while_everything_is_valid() -> None:
    state = fresh()
    later = plan(state, hosts=HOSTS, now=T0 + minutes(15), lifetimes=SHORT)
    assert not later.changed
    assert later.state.serving is state.serving
    assert later.state.authority is state.authority


def test_the_serving_pair_is_renewed_before_expiry_by_the_same_ca() -> None:
    state = fresh()
    assert state.serving is not None and state.authority is not None
    due = state.serving.not_after - SHORT.serving_renew_before
    result = plan(state, hosts=HOSTS, now=due, lifetimes=SHORT)
    assert "the serving certificate is due for renewal" in result.reasons
    assert result.state.serving is not None
    assert result.state.serving.certificate != state.serving.certificate
    assert result.state.authority is state.authority
    assert result.state.ca_bundle == state.ca_bundle  # nothing for the API server to learn


def test_a_new_host_name_reissues_the_pair() -> None:
    state = fresh()
    hosts = (*HOSTS, "127.0.0.1")
    result = plan(state, hosts=hosts, now=T0 + minutes(1), lifetimes=SHORT)
    assert result.reasons == ("the serving certificate's host names changed",)
    assert result.state.serving is not None
    assert result.state.serving.hosts() == frozenset(hosts)


def test_long_service_names_fit() -> None:
    """DNS names up to 253 characters go into SANs; only the short CN has a length limit."""
    hosts = service_hosts("a-rather-long-release-name-mamori-webhook", "team-payments-production")
    state = plan(CertificateState(), hosts=hosts, now=T0, lifetimes=SHORT).state
    assert state.serving is not None and state.serving.hosts() == frozenset(hosts)


def test_the_serving_pair_never_outlives_its_ca() -> None:
    lifetimes = Lifetimes(
        ca_validity=datetime.timedelta(hours=1),
        ca_renew_before=minutes(50),
        serving_validity=datetime.timedelta(hours=5),
        serving_renew_before=minutes(1),
        overlap=minutes(1),
    )
    state = plan(CertificateState(), hosts=HOSTS, now=T0, lifetimes=lifetimes).state
    assert state.serving is not None and state.authority is not None
    assert state.serving.not_after == state.authority.not_after


def advance(
    state: CertificateState, *, start: datetime.datetime, end: datetime.datetime
) -> CertificateState:
    """Run the plan every minute from ``start`` until before ``end`` (serving renewals happen)."""
    at = start
    while at < end:
        state = plan(state, hosts=HOSTS, now=at, lifetimes=SHORT).state
        at += minutes(1)
    return state


def test_ca_rotation_goes_through_the_overlap_in_three_steps() -> None:
    first = fresh()
    assert first.authority is not None
    due = first.authority.not_after - SHORT.ca_renew_before
    state = advance(first, start=T0, end=due)
    assert state.authority is first.authority and state.serving is not None
    old_ca, old_pair = state.authority, state.serving

    # 1. A new CA joins the bundle; the served pair stays (pods keep serving it).
    step1 = plan(state, hosts=HOSTS, now=due, lifetimes=SHORT)
    assert step1.reasons == ("the CA is due for renewal",)
    new_ca = step1.state.authority
    assert new_ca is not None and new_ca.certificate != old_ca.certificate
    assert step1.state.previous_ca == old_ca.certificate
    assert step1.state.serving is old_pair
    assert certificates_from_pem(step1.state.ca_bundle) == [new_ca.certificate, old_ca.certificate]

    # Within the overlap nothing moves.
    assert not plan(step1.state, hosts=HOSTS, now=due + minutes(4), lifetimes=SHORT).changed

    # 2. After an overlap the serving pair switches to the new CA; both CAs are still trusted.
    step2 = plan(step1.state, hosts=HOSTS, now=due + SHORT.overlap, lifetimes=SHORT)
    assert step2.reasons == (
        "the new CA has been trusted for an overlap: switching the serving pair",
    )
    assert step2.state.serving is not None
    assert new_ca.signed(step2.state.serving.certificate)
    assert step2.state.ca_bundle == step1.state.ca_bundle

    # 3. An overlap after the switch, the old CA is dropped.
    assert not plan(step2.state, hosts=HOSTS, now=due + minutes(9), lifetimes=SHORT).changed
    step3 = plan(step2.state, hosts=HOSTS, now=due + 2 * SHORT.overlap, lifetimes=SHORT)
    assert step3.reasons == (
        "the serving pair has used the new CA for an overlap: retiring the old CA",
    )
    assert step3.state.previous_ca is None
    assert step3.state.ca_bundle == new_ca.certificate_pem
    assert step3.state.serving is step2.state.serving


def test_a_lost_ca_secret_keeps_trusting_the_ca_of_the_served_pair() -> None:
    """The CA Secret deleted by hand: the published bundle still names the CA of the live pair."""
    state = fresh()
    assert state.serving is not None
    damaged = load_state(
        ca_certificate=None,
        ca_key=None,
        previous_ca=None,
        serving_certificate=state.serving.certificate_pem,
        serving_key=state.serving.key_pem,
        published_bundle=state.ca_bundle,
    )
    result = plan(damaged, hosts=HOSTS, now=T0 + minutes(1), lifetimes=SHORT)
    assert result.reasons == ("no CA is stored",)
    assert result.state.serving is damaged.serving
    assert trusts(result.state.ca_bundle, state.serving, T0 + minutes(1))


def test_a_pair_from_an_unknown_ca_is_replaced_at_once() -> None:
    state = fresh()
    stranger = Authority.create(now=T0, validity=datetime.timedelta(hours=1))
    foreign = stranger.issue(HOSTS, now=T0, validity=minutes(30))
    result = plan(
        CertificateState(authority=state.authority, serving=foreign),
        hosts=HOSTS,
        now=T0,
        lifetimes=SHORT,
    )
    assert result.reasons == ("the served certificate is not signed by a trusted CA",)
    assert result.state.serving is not None and state.authority is not None
    assert state.authority.signed(result.state.serving.certificate)


def test_a_key_that_does_not_match_its_certificate_is_replaced() -> None:
    state = fresh()
    other = fresh()
    assert state.serving is not None and other.serving is not None and state.authority
    mixed = load_state(
        ca_certificate=state.authority.certificate_pem,
        ca_key=state.authority.key_pem,
        previous_ca=None,
        serving_certificate=state.serving.certificate_pem,
        serving_key=other.serving.key_pem,
    )
    result = plan(mixed, hosts=HOSTS, now=T0, lifetimes=SHORT)
    assert "the stored serving key does not match its certificate" in result.reasons
    assert result.state.serving is not None and result.state.serving.matches_key()


def test_stored_pem_round_trips_and_garbage_reads_as_missing() -> None:
    state = fresh()
    assert state.authority is not None and state.serving is not None
    loaded = load_state(
        ca_certificate=certificate_pem(state.authority.certificate),
        ca_key=private_key_pem(state.authority.key),
        previous_ca=None,
        serving_certificate=state.serving.certificate_pem,
        serving_key=state.serving.key_pem,
    )
    assert loaded.authority is not None and loaded.serving is not None
    assert loaded.authority.certificate == state.authority.certificate
    assert loaded.serving.certificate == state.serving.certificate
    assert not plan(loaded, hosts=HOSTS, now=T0, lifetimes=SHORT).changed

    garbage = load_state(
        ca_certificate=b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
        ca_key=b"not a key",
        previous_ca=b"",
        serving_certificate=b"\x00\x01",
        serving_key=None,
    )
    assert garbage == CertificateState()


def test_a_serving_certificate_is_not_accepted_as_the_ca() -> None:
    state = fresh()
    assert state.serving is not None
    loaded = load_state(
        ca_certificate=state.serving.certificate_pem,
        ca_key=state.serving.key_pem,
        previous_ca=None,
        serving_certificate=None,
        serving_key=None,
    )
    assert loaded.authority is None


@dataclass
class Observed:
    """One step of the simulated operator: when, and what was stored after it."""

    at: datetime.datetime
    state: CertificateState


@settings(max_examples=25, deadline=None)
@given(gaps=st.lists(st.integers(min_value=5, max_value=15 * 60), min_size=60, max_size=160))
def test_no_step_ever_leaves_a_served_pair_untrusted(gaps: list[int]) -> None:
    """Run the plan at irregular moments over several CA lifetimes (an operator whose timer is
    late, restarts, or takes over from another). The writer stores the bundle before the pair, and
    pods pick a new pair up later; so after each step the new bundle must trust both the new pair
    and the pair pods may still serve, and a pair may move to a new CA only an overlap after that
    CA reached the bundle."""
    now = T0
    history = [Observed(now, fresh(now))]
    first_trusted: dict[bytes, datetime.datetime] = {}
    for gap in gaps:
        now += datetime.timedelta(seconds=gap)
        before = history[-1].state
        after = plan(before, hosts=HOSTS, now=now, lifetimes=SHORT).state
        assert after.serving is not None and after.authority is not None
        for ca in certificates_from_pem(before.ca_bundle):
            first_trusted.setdefault(certificate_pem(ca), history[-1].at)

        assert trusts(after.ca_bundle, after.serving, now)
        old = before.serving
        assert old is not None
        if trusts(before.ca_bundle, old, now):
            assert trusts(after.ca_bundle, old, now), "a pair still served lost its CA"
            if after.serving is not old and not signed_by_same_ca(old, after.serving, before):
                signer = signer_in(after.ca_bundle, after.serving)
                since = first_trusted.get(certificate_pem(signer))
                expiring = old.not_after - now <= SHORT.overlap
                assert expiring or (since is not None and now - since >= SHORT.overlap)
        history.append(Observed(now, after))

    authorities = {
        certificate_pem(o.state.authority.certificate) for o in history if o.state.authority
    }
    if now - T0 > 2 * SHORT.ca_validity:
        assert len(authorities) >= 2, "the CA was never rotated"


def signer_in(bundle: bytes, pair: ServingPair) -> x509.Certificate:
    return next(ca for ca in certificates_from_pem(bundle) if signed_by(pair.certificate, ca))


def signed_by_same_ca(old: ServingPair, new: ServingPair, state: CertificateState) -> bool:
    return any(
        signed_by(old.certificate, ca) and signed_by(new.certificate, ca)
        for ca in certificates_from_pem(state.ca_bundle)
    )
