"""`SocketSlots`: open sockets counted per key, each key up to the limit."""

from __future__ import annotations

from server.services.socket_slots import SocketSlots


def test_a_key_gets_up_to_the_limit_and_a_slot_given_back_is_free_again() -> None:
    slots = SocketSlots(2)
    assert slots.take("10.0.0.1") and slots.take("10.0.0.1")
    assert not slots.take("10.0.0.1")
    assert slots.take("10.0.0.2")  # keys are counted apart
    slots.give_back("10.0.0.1")
    assert slots.take("10.0.0.1")


def test_keys_with_no_open_socket_are_forgotten() -> None:
    slots = SocketSlots(3)
    for _ in range(3):
        slots.take("agent")
    for _ in range(3):
        slots.give_back("agent")
    assert slots.open("agent") == 0 and len(slots) == 0
