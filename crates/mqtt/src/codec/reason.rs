//! MQTT 5 reason codes, and their mapping onto the MQTT 3.1.1 CONNACK return codes and
//! SUBACK return codes.

/// Every MQTT 5 reason code. 0x00 is `Success`, which the spec also calls "Normal
/// disconnection" and "Granted QoS 0" (see the associated constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum ReasonCode {
    #[default]
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8a,
    ServerShuttingDown = 0x8b,
    BadAuthenticationMethod = 0x8c,
    KeepAliveTimeout = 0x8d,
    SessionTakenOver = 0x8e,
    TopicFilterInvalid = 0x8f,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9a,
    QoSNotSupported = 0x9b,
    UseAnotherServer = 0x9c,
    ServerMoved = 0x9d,
    SharedSubscriptionsNotSupported = 0x9e,
    ConnectionRateExceeded = 0x9f,
    MaximumConnectTime = 0xa0,
    SubscriptionIdentifiersNotSupported = 0xa1,
    WildcardSubscriptionsNotSupported = 0xa2,
}

use ReasonCode::*;

/// Reason codes a CONNACK may carry.
pub(crate) const CONNACK: &[ReasonCode] = &[
    Success,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    UnsupportedProtocolVersion,
    ClientIdentifierNotValid,
    BadUserNameOrPassword,
    NotAuthorized,
    ServerUnavailable,
    ServerBusy,
    Banned,
    BadAuthenticationMethod,
    TopicNameInvalid,
    PacketTooLarge,
    QuotaExceeded,
    PayloadFormatInvalid,
    RetainNotSupported,
    QoSNotSupported,
    UseAnotherServer,
    ServerMoved,
    ConnectionRateExceeded,
];

/// Reason codes a PUBACK or PUBREC may carry.
pub(crate) const PUBACK: &[ReasonCode] = &[
    Success,
    NoMatchingSubscribers,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicNameInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    PayloadFormatInvalid,
];

/// Reason codes a PUBREL or PUBCOMP may carry.
pub(crate) const PUBREL: &[ReasonCode] = &[Success, PacketIdentifierNotFound];

/// Reason codes a SUBACK may carry.
pub(crate) const SUBACK: &[ReasonCode] = &[
    Success,
    GrantedQoS1,
    GrantedQoS2,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicFilterInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    SharedSubscriptionsNotSupported,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
];

/// Reason codes an UNSUBACK may carry.
pub(crate) const UNSUBACK: &[ReasonCode] = &[
    Success,
    NoSubscriptionExisted,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicFilterInvalid,
    PacketIdentifierInUse,
];

/// Reason codes an AUTH may carry.
pub(crate) const AUTH: &[ReasonCode] = &[Success, ContinueAuthentication, ReAuthenticate];

/// Reason codes a DISCONNECT may carry.
pub(crate) const DISCONNECT: &[ReasonCode] = &[
    Success,
    DisconnectWithWillMessage,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    NotAuthorized,
    ServerBusy,
    ServerShuttingDown,
    KeepAliveTimeout,
    SessionTakenOver,
    TopicFilterInvalid,
    TopicNameInvalid,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    PacketTooLarge,
    MessageRateTooHigh,
    QuotaExceeded,
    AdministrativeAction,
    PayloadFormatInvalid,
    RetainNotSupported,
    QoSNotSupported,
    UseAnotherServer,
    ServerMoved,
    SharedSubscriptionsNotSupported,
    ConnectionRateExceeded,
    MaximumConnectTime,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
];

impl ReasonCode {
    /// "Normal disconnection" (DISCONNECT) is 0x00.
    pub const NORMAL_DISCONNECTION: ReasonCode = Success;
    /// "Granted QoS 0" (SUBACK) is 0x00.
    pub const GRANTED_QOS0: ReasonCode = Success;

    /// The reason code for a wire byte, if it is one.
    pub fn from_u8(v: u8) -> Option<ReasonCode> {
        Some(match v {
            0x00 => Success,
            0x01 => GrantedQoS1,
            0x02 => GrantedQoS2,
            0x04 => DisconnectWithWillMessage,
            0x10 => NoMatchingSubscribers,
            0x11 => NoSubscriptionExisted,
            0x18 => ContinueAuthentication,
            0x19 => ReAuthenticate,
            0x80 => UnspecifiedError,
            0x81 => MalformedPacket,
            0x82 => ProtocolError,
            0x83 => ImplementationSpecificError,
            0x84 => UnsupportedProtocolVersion,
            0x85 => ClientIdentifierNotValid,
            0x86 => BadUserNameOrPassword,
            0x87 => NotAuthorized,
            0x88 => ServerUnavailable,
            0x89 => ServerBusy,
            0x8a => Banned,
            0x8b => ServerShuttingDown,
            0x8c => BadAuthenticationMethod,
            0x8d => KeepAliveTimeout,
            0x8e => SessionTakenOver,
            0x8f => TopicFilterInvalid,
            0x90 => TopicNameInvalid,
            0x91 => PacketIdentifierInUse,
            0x92 => PacketIdentifierNotFound,
            0x93 => ReceiveMaximumExceeded,
            0x94 => TopicAliasInvalid,
            0x95 => PacketTooLarge,
            0x96 => MessageRateTooHigh,
            0x97 => QuotaExceeded,
            0x98 => AdministrativeAction,
            0x99 => PayloadFormatInvalid,
            0x9a => RetainNotSupported,
            0x9b => QoSNotSupported,
            0x9c => UseAnotherServer,
            0x9d => ServerMoved,
            0x9e => SharedSubscriptionsNotSupported,
            0x9f => ConnectionRateExceeded,
            0xa0 => MaximumConnectTime,
            0xa1 => SubscriptionIdentifiersNotSupported,
            0xa2 => WildcardSubscriptionsNotSupported,
            _ => return None,
        })
    }

    /// The wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// The MQTT 3.1.1 CONNACK return code that says the same (0 accepted, 1 unacceptable
    /// protocol version, 2 identifier rejected, 3 server unavailable, 4 bad user name or
    /// password, 5 not authorized); failures without a 3.1.1 equivalent become 3 or 5.
    pub fn to_v3_connack(self) -> u8 {
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword | BadAuthenticationMethod => 4,
            NotAuthorized | Banned => 5,
            _ => 3,
        }
    }

    /// The reason code for an MQTT 3.1.1 CONNACK return code (0–5).
    pub fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => Success,
            1 => UnsupportedProtocolVersion,
            2 => ClientIdentifierNotValid,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 3.1.1 SUBACK return code: the granted QoS, or 0x80 for any failure.
    pub fn to_v3_suback(self) -> u8 {
        match self {
            Success | GrantedQoS1 | GrantedQoS2 => self.as_u8(),
            _ => 0x80,
        }
    }

    /// The reason code for an MQTT 3.1.1 SUBACK return code (0x00–0x02, 0x80).
    pub fn from_v3_suback(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => Success,
            1 => GrantedQoS1,
            2 => GrantedQoS2,
            0x80 => UnspecifiedError,
            _ => return None,
        })
    }

    /// The granted-QoS code for a QoS.
    pub fn granted(qos: super::QoS) -> ReasonCode {
        match qos {
            super::QoS::AtMostOnce => Success,
            super::QoS::AtLeastOnce => GrantedQoS1,
            super::QoS::ExactlyOnce => GrantedQoS2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_u8_is_inverse_of_as_u8() {
        let mut n = 0;
        for v in 0..=255u8 {
            if let Some(r) = ReasonCode::from_u8(v) {
                assert_eq!(r.as_u8(), v);
                n += 1;
            }
        }
        assert_eq!(n, 43);
    }

    #[test]
    fn v3_connack_mapping() {
        for c in 0..=5 {
            assert_eq!(ReasonCode::from_v3_connack(c).unwrap().to_v3_connack(), c);
        }
        assert_eq!(ReasonCode::from_v3_connack(6), None);
        assert_eq!(ReasonCode::ServerBusy.to_v3_connack(), 3);
        assert_eq!(ReasonCode::Banned.to_v3_connack(), 5);
    }

    #[test]
    fn every_list_holds_valid_codes() {
        for list in [CONNACK, PUBACK, PUBREL, SUBACK, UNSUBACK, AUTH, DISCONNECT] {
            for r in list {
                assert_eq!(ReasonCode::from_u8(r.as_u8()), Some(*r));
            }
        }
    }
}
