"""Every RawSelinuxProfile attack of the corpus is refused, with its reason and a clear message.

tests/node/test_selinux_attacks_install.py shows that each of them is CIL that semodule
would install were the validation skipped.
"""

from __future__ import annotations

import pytest

from hooks.api.problems import ProfileProblem
from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.cluster.selinux.translation import translate
from tests.helpers.cil_attacks import (
    ATTACKS,
    ISSUE_ATTRIBUTES,
    ISSUE_QUOTED,
    NAMESPACE,
    NEW,
    Attack,
)


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
def test_the_attack_is_refused_saying_why(attack: Attack) -> None:
    profile = RawSelinuxProfile.model_validate(
        {
            "metadata": {"name": attack.name, "namespace": NAMESPACE},
            "spec": {"policy": attack.policy},
        }
    )
    with pytest.raises(ProfileProblem) as caught:
        translate(profile)
    assert (caught.value.reason, attack.says in caught.value.message) == (attack.reason, True), (
        caught.value.message
    )
    assert caught.value.message.startswith("spec.policy")
    assert len(caught.value.message) < 400  # a long token is cut in the message


def test_the_corpus_has_the_issues_payloads_and_thirty_new_ones() -> None:
    origins = [attack.origin for attack in ATTACKS]
    assert origins.count(ISSUE_QUOTED) == 8
    assert origins.count(ISSUE_ATTRIBUTES) == 6
    assert origins.count(NEW) >= 30
    names = [attack.name for attack in ATTACKS]
    assert len(set(names)) == len(names)
