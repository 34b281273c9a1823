//! Packet codes (RFC 2865 §3, RFC 2866, RFC 5176, RFC 5997).

/// The code of a RADIUS packet. Unknown codes are not representable: such packets
/// are silently discarded (RFC 2865 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    /// Access-Request (1).
    AccessRequest = 1,
    /// Access-Accept (2).
    AccessAccept = 2,
    /// Access-Reject (3).
    AccessReject = 3,
    /// Accounting-Request (4).
    AccountingRequest = 4,
    /// Accounting-Response (5).
    AccountingResponse = 5,
    /// Access-Challenge (11).
    AccessChallenge = 11,
    /// Status-Server (12, RFC 5997).
    StatusServer = 12,
    /// Status-Client (13, RFC 5997).
    StatusClient = 13,
    /// Disconnect-Request (40, RFC 5176).
    DisconnectRequest = 40,
    /// Disconnect-ACK (41).
    DisconnectAck = 41,
    /// Disconnect-NAK (42).
    DisconnectNak = 42,
    /// CoA-Request (43, RFC 5176).
    CoaRequest = 43,
    /// CoA-ACK (44).
    CoaAck = 44,
    /// CoA-NAK (45).
    CoaNak = 45,
}

impl Code {
    /// The code for a wire value, or `None` for codes we do not speak.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::AccessRequest,
            2 => Self::AccessAccept,
            3 => Self::AccessReject,
            4 => Self::AccountingRequest,
            5 => Self::AccountingResponse,
            11 => Self::AccessChallenge,
            12 => Self::StatusServer,
            13 => Self::StatusClient,
            40 => Self::DisconnectRequest,
            41 => Self::DisconnectAck,
            42 => Self::DisconnectNak,
            43 => Self::CoaRequest,
            44 => Self::CoaAck,
            45 => Self::CoaNak,
            _ => return None,
        })
    }

    /// Whether packets with this code are requests (sent by a client, answered by a server).
    pub fn is_request(self) -> bool {
        matches!(
            self,
            Self::AccessRequest
                | Self::AccountingRequest
                | Self::StatusServer
                | Self::StatusClient
                | Self::DisconnectRequest
                | Self::CoaRequest
        )
    }

    /// Whether the Request Authenticator of this request is computed from the packet
    /// (Accounting, CoA, Disconnect: RFC 2866 §3, RFC 5176 §2.3) rather than random.
    pub fn has_computed_request_authenticator(self) -> bool {
        matches!(
            self,
            Self::AccountingRequest | Self::DisconnectRequest | Self::CoaRequest
        )
    }

    /// The registered name, as in dictionaries and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccessRequest => "Access-Request",
            Self::AccessAccept => "Access-Accept",
            Self::AccessReject => "Access-Reject",
            Self::AccountingRequest => "Accounting-Request",
            Self::AccountingResponse => "Accounting-Response",
            Self::AccessChallenge => "Access-Challenge",
            Self::StatusServer => "Status-Server",
            Self::StatusClient => "Status-Client",
            Self::DisconnectRequest => "Disconnect-Request",
            Self::DisconnectAck => "Disconnect-ACK",
            Self::DisconnectNak => "Disconnect-NAK",
            Self::CoaRequest => "CoA-Request",
            Self::CoaAck => "CoA-ACK",
            Self::CoaNak => "CoA-NAK",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
