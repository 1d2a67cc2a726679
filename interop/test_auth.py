"""SASL (when a tenant has users, anonymous access is refused: docs/SEMANTICS.md) with python-qpid-proton."""

import pytest
from proton import ConnectionException, Delivery, Message
from proton.utils import LinkDetached

ACCEPTED = Delivery.ACCEPTED


def test_sasl_plain_success(auth_server, new_world):
    world = new_world(auth_server.url)
    conn = world.connect(user="alice", password="secret", allowed_mechs="PLAIN")
    snd = world.sender(conn, "q1")
    assert snd.send(Message(body="authenticated")) == ACCEPTED
    rcv = world.receiver(conn, "q1", credit=1)
    r = rcv.get()
    assert r.body == "authenticated"
    r.accept()


def test_sasl_plain_wrong_password_fails(auth_server, new_world):
    world = new_world(auth_server.url)
    with pytest.raises(ConnectionException) as ei:
        world.connect(user="alice", password="wrong", allowed_mechs="PLAIN")
    text = str(ei.value)
    assert "unauthorized-access" in text or "Authentication failed" in text, text


def test_sasl_unknown_user_fails(auth_server, new_world):
    world = new_world(auth_server.url)
    with pytest.raises(ConnectionException):
        world.connect(user="mallory", password="secret", allowed_mechs="PLAIN")


def test_anonymous_refused_when_users_exist(auth_server, new_world):
    world = new_world(auth_server.url)
    try:
        conn = world.connect()  # proton offers ANONYMOUS when it has no credentials
    except ConnectionException:
        return  # refused at SASL/connection level
    # If the connection was let in, every operation must be refused.
    with pytest.raises(LinkDetached) as ei:
        snd = world.sender(conn, "q1")
        snd.send(Message(body="anonymous"), timeout=3)
    assert ei.value.condition == "amqp:unauthorized-access", str(ei.value)
