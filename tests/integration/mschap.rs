//! Native RADIUS MS-CHAPv2 (not EAP) through portvakt, as Windows RRAS and Cisco ASA with password management send
//! it: MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548) in the Access-Request, MS-CHAP2-Success and salt-encrypted
//! MS-MPPE keys in the Accept. The NAS side is `support::mschap` (written from RFC 2759 and RFC 3079), the directory a
//! real FreeRADIUS; portvakt never sees the password and must carry the exchange through untouched.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, ensure};
use portvakt::factor::totp::{Algorithm, TotpSecret};
use portvakt::login::RadiusClient;
use portvakt::radius::dictionary::Dictionary;
use portvakt::radius::{self, Attribute, Code, Keying, Packet, attr, crypt, display, random};
use portvakt::secret::Secret;

use crate::pass_through::{directory, proxy};
use crate::support::freeradius::*;
use crate::support::mschap::Mschapv2;
use crate::support::proxy::{NAS_SECRET, Proxy};

/// MS-CHAP-Error (RFC 2548 §2.1.5): Ident, then `E=691 R=… C=… V=3 M=…`.
const MS_CHAP_ERROR: u8 = 2;
/// MS-MPPE-Encryption-Policy (RFC 2548 §2.4.4) and -Types (§2.4.5), which FreeRADIUS adds next to the keys.
const MS_MPPE_ENCRYPTION_POLICY: u8 = 7;
const MS_MPPE_ENCRYPTION_TYPES: u8 = 8;

/// A request as RRAS sends it for an MS-CHAPv2 PPP login, with the Request Authenticator kept: the MPPE keys in
/// the reply are encrypted with it.
pub(crate) struct SentRequest {
    pub(crate) reply: Packet,
    pub(crate) authenticator: [u8; 16],
}

fn vsa(vendor_type: u8, value: &[u8]) -> Result<Attribute> {
    Ok(Attribute {
        typ: attr::VENDOR_SPECIFIC,
        value: attr::build_vsa(attr::VENDOR_MICROSOFT, vendor_type, value)
            .context("VSA value too long")?,
    })
}

/// Sends one MS-CHAPv2 Access-Request for `login` to `server` (with `extra` attributes) and returns the verified
/// reply (Response Authenticator and Message-Authenticator checked by `RadiusClient`).
pub(crate) fn send(
    server: SocketAddr,
    login: &Mschapv2,
    extra: &[Attribute],
) -> Result<SentRequest> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client =
            RadiusClient::bind("127.0.0.1:0".parse()?, server, Secret::new(NAS_SECRET)).await?;
        let authenticator = random::bytes16();
        let mut id = [0u8; 1];
        random::fill(&mut id);
        let mut request = Packet::new(Code::AccessRequest, id[0], authenticator);
        request.set_message_authenticator_first();
        request.push(attr::USER_NAME, login.user_name.as_bytes());
        request.push(attr::NAS_IDENTIFIER, &b"rras-test"[..]);
        request.push(attr::SERVICE_TYPE, 2u32.to_be_bytes()); // Framed
        request.push(7, 1u32.to_be_bytes()); // Framed-Protocol = PPP
        request.attributes.push(vsa(
            attr::MS_CHAP_CHALLENGE,
            &login.authenticator_challenge,
        )?);
        request
            .attributes
            .push(vsa(attr::MS_CHAP2_RESPONSE, &login.response_value())?);
        request.attributes.extend(extra.iter().cloned());
        let bytes = radius::encode_request(&request, NAS_SECRET.as_bytes())?;
        let reply = client.exchange(&bytes, &authenticator, id[0]).await?;
        anyhow::Ok(SentRequest {
            reply,
            authenticator,
        })
    })
}

/// The reply's attributes as text, for assertion messages.
fn describe(packet: &Packet) -> String {
    let dict = Dictionary::builtin();
    let mut text = format!("{} (id {})\n", packet.code, packet.identifier);
    for a in &packet.attributes {
        text += &format!("\t{}\n", display::format_attribute(&dict, a.typ, &a.value));
    }
    text
}

/// The one value of a Microsoft VSA, or an error naming it.
pub(crate) fn microsoft<'a>(packet: &'a Packet, vendor_type: u8, name: &str) -> Result<&'a [u8]> {
    let mut values = packet.vendor_attrs(attr::VENDOR_MICROSOFT, vendor_type);
    let value = values
        .next()
        .with_context(|| format!("no {name} in\n{}", describe(packet)))?;
    ensure!(
        values.next().is_none(),
        "{name} twice in\n{}",
        describe(packet)
    );
    Ok(value)
}

#[test]
fn native_mschapv2_is_accepted_end_to_end_with_mppe_keys_for_the_nas() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let login = Mschapv2::new(BOB.name, BOB.password);

    let sent = send(proxy.auth(), &login, &[])?;
    let reply = &sent.reply;

    assert_eq!(reply.code, Code::AccessAccept, "{}", describe(reply));
    assert_eq!(
        reply.attributes.first().map(|a| a.typ),
        Some(attr::MESSAGE_AUTHENTICATOR),
        "Message-Authenticator first"
    );
    // The directory's proof that it knows bob's password, checked as the user's PC checks it (RFC 2759 §8.8):
    // only an exchange carried through unchanged in both directions verifies.
    let success = microsoft(reply, attr::MS_CHAP2_SUCCESS, "MS-CHAP2-Success")?;
    assert!(
        login.verify_success(success),
        "MS-CHAP2-Success {:?} does not prove bob's password; expected {:?}",
        String::from_utf8_lossy(success),
        String::from_utf8_lossy(&login.expected_success(BOB.password))
    );
    // bob's own reply item comes through too.
    assert_eq!(
        reply.attr(attr::REPLY_MESSAGE),
        Some(BOB_REPLY_MESSAGE.as_bytes())
    );

    // The MPPE keys, encrypted by FreeRADIUS for portvakt, must reach the NAS encrypted for *it*: the NAS secret and
    // the Request Authenticator of the NAS's own request (RFC 2548 §2.4.2-3).
    let nas = Keying {
        secret: NAS_SECRET.as_bytes(),
        authenticator: &sent.authenticator,
    };
    let send_key = crypt::salt_decrypt(
        microsoft(reply, attr::MS_MPPE_SEND_KEY, "MS-MPPE-Send-Key")?,
        nas,
    )
    .context("MS-MPPE-Send-Key does not decrypt with the NAS's keying")?;
    let recv_key = crypt::salt_decrypt(
        microsoft(reply, attr::MS_MPPE_RECV_KEY, "MS-MPPE-Recv-Key")?,
        nas,
    )
    .context("MS-MPPE-Recv-Key does not decrypt with the NAS's keying")?;
    ensure!(
        matches!(send_key.len(), 16 | 32) && matches!(recv_key.len(), 16 | 32),
        "MPPE keys of {} and {} octets",
        send_key.len(),
        recv_key.len()
    );
    // And they are the keys RFC 3079 derives from this very exchange, so the NAS and the PC agree on them.
    let (expected_send, expected_recv) = login.expected_mppe_keys(BOB.password);
    assert_eq!(send_key.as_slice(), expected_send, "MS-MPPE-Send-Key");
    assert_eq!(recv_key.as_slice(), expected_recv, "MS-MPPE-Recv-Key");
    // Not readable with the upstream's secret: they were re-encrypted, not copied.
    let upstream_keying = Keying {
        secret: upstream.secret().as_bytes(),
        authenticator: &sent.authenticator,
    };
    let copied = crypt::salt_decrypt(
        microsoft(reply, attr::MS_MPPE_SEND_KEY, "MS-MPPE-Send-Key")?,
        upstream_keying,
    );
    assert!(
        copied.as_deref().map(|k| k.as_slice()) != Ok(&expected_send[..]),
        "the key decrypts with the upstream's secret"
    );
    // FreeRADIUS's policy and types for the keys travel unchanged (4-octet integers).
    for (t, name) in [
        (MS_MPPE_ENCRYPTION_POLICY, "MS-MPPE-Encryption-Policy"),
        (MS_MPPE_ENCRYPTION_TYPES, "MS-MPPE-Encryption-Types"),
    ] {
        assert_eq!(microsoft(reply, t, name)?.len(), 4, "{name}");
    }
    assert_eq!(upstream.access_requests_for(BOB.name)?, 1);
    Ok(())
}

#[test]
fn native_mschapv2_with_a_wrong_password_is_rejected_with_ms_chap_error() -> Result<()> {
    let upstream = directory()?;
    let proxy = proxy(&upstream)?;
    let login = Mschapv2::new(BOB.name, "not-bobs-password");

    let reply = send(proxy.auth(), &login, &[])?.reply;

    assert_eq!(reply.code, Code::AccessReject, "{}", describe(&reply));
    let error = microsoft(&reply, MS_CHAP_ERROR, "MS-CHAP-Error")?;
    assert_eq!(
        error.first(),
        Some(&login.ident),
        "MS-CHAP-Error echoes the Ident"
    );
    let text = String::from_utf8_lossy(&error[1..]);
    // RFC 2759 §6: E=691 is "authentication failure".
    assert!(text.starts_with("E=691"), "MS-CHAP-Error {text:?}");
    for (t, name) in [
        (attr::MS_CHAP2_SUCCESS, "MS-CHAP2-Success"),
        (attr::MS_MPPE_SEND_KEY, "MS-MPPE-Send-Key"),
        (attr::MS_MPPE_RECV_KEY, "MS-MPPE-Recv-Key"),
    ] {
        assert!(
            reply
                .vendor_attrs(attr::VENDOR_MICROSOFT, t)
                .next()
                .is_none(),
            "{name} in a Reject:\n{}",
            describe(&reply)
        );
    }
    Ok(())
}

/// Off-site, a second factor is due, but an MS-CHAPv2 NAS (RRAS) cannot show a prompt and treats Access-Challenge
/// as Reject (protocol.md §1, RFC 2548). Until push exists portvakt fails closed for such logins
/// (`pipeline/access.rs`, `challenge`): the held Accept, with its MS-CHAP2-Success and keys, is never released
/// without the second factor, and no challenge is left pending for a login that cannot answer it.
#[test]
fn off_site_native_mschapv2_is_rejected_not_challenged() -> Result<()> {
    let upstream = directory()?;
    let proxy = Proxy::builder()
        .upstream(&upstream)
        .with_store()
        .toml("[mfa]\nlanguage = \"en\"")
        .start()?;
    let store = proxy.store();
    store.add_user(BOB.name)?;
    store.set_totp(
        BOB.name,
        &TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 6, 30, Algorithm::Sha1)?,
        true,
    )?;
    let login = Mschapv2::new(BOB.name, BOB.password);
    let station = Attribute {
        typ: attr::CALLING_STATION_ID,
        value: b"203.0.113.7".to_vec(),
    };

    let reply = send(proxy.auth(), &login, &[station])?.reply;

    assert_eq!(reply.code, Code::AccessReject, "{}", describe(&reply));
    assert!(
        reply
            .vendor_attrs(attr::VENDOR_MICROSOFT, attr::MS_CHAP2_SUCCESS)
            .next()
            .is_none(),
        "{}",
        describe(&reply)
    );
    assert!(
        proxy.context().challenges.is_empty(),
        "a challenge left pending"
    );
    Ok(())
}
