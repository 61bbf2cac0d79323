//! Links (`RTM_NEWLINK` / `RTM_DELLINK`): a zero-copy view and its 64-bit statistics.

use nlkit_wire::consts::*;
use nlkit_wire::{Attr, IfInfoMsg, Message, WireError};

use crate::check_type;
use crate::KindInfo;

/// `struct rtnl_link_stats64` (`IFLA_STATS64`), copied out of the message.
///
/// Older kernels send fewer fields and newer ones more: the fields present are read, missing
/// ones stay 0, and any tail this crate does not know is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)]
pub struct LinkStats64 {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub multicast: u64,
    pub collisions: u64,
    pub rx_length_errors: u64,
    pub rx_over_errors: u64,
    pub rx_crc_errors: u64,
    pub rx_frame_errors: u64,
    pub rx_fifo_errors: u64,
    pub rx_missed_errors: u64,
    pub tx_aborted_errors: u64,
    pub tx_carrier_errors: u64,
    pub tx_fifo_errors: u64,
    pub tx_heartbeat_errors: u64,
    pub tx_window_errors: u64,
    pub rx_compressed: u64,
    pub tx_compressed: u64,
    pub rx_nohandler: u64,
    pub rx_otherhost_dropped: u64,
}

impl LinkStats64 {
    /// Reads as many whole `u64` fields as `bytes` holds (native byte order).
    ///
    /// ```
    /// let mut raw = Vec::new();
    /// for v in 1u64..=4 { raw.extend_from_slice(&v.to_ne_bytes()); }
    /// let s = nlkit_route::LinkStats64::parse(&raw);
    /// assert_eq!((s.rx_packets, s.tx_bytes, s.rx_errors), (1, 4, 0));
    /// ```
    pub fn parse(bytes: &[u8]) -> Self {
        let mut s = LinkStats64::default();
        let fields: [&mut u64; 25] = [
            &mut s.rx_packets,
            &mut s.tx_packets,
            &mut s.rx_bytes,
            &mut s.tx_bytes,
            &mut s.rx_errors,
            &mut s.tx_errors,
            &mut s.rx_dropped,
            &mut s.tx_dropped,
            &mut s.multicast,
            &mut s.collisions,
            &mut s.rx_length_errors,
            &mut s.rx_over_errors,
            &mut s.rx_crc_errors,
            &mut s.rx_frame_errors,
            &mut s.rx_fifo_errors,
            &mut s.rx_missed_errors,
            &mut s.tx_aborted_errors,
            &mut s.tx_carrier_errors,
            &mut s.tx_fifo_errors,
            &mut s.tx_heartbeat_errors,
            &mut s.tx_window_errors,
            &mut s.rx_compressed,
            &mut s.tx_compressed,
            &mut s.rx_nohandler,
            &mut s.rx_otherhost_dropped,
        ];
        for (field, chunk) in fields.into_iter().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            *field = u64::from_ne_bytes(a);
        }
        s
    }
}

/// A borrowed view of one link message, decoded in one pass over its attributes.
///
/// Attributes this view does not decode (including those from newer kernels) are skipped and
/// counted in [`unknown_attrs`](LinkView::unknown_attrs); they are never an error.
///
/// ```
/// use nlkit_wire::{Messages, MessageBuilder};
/// use nlkit_route::{request, LinkView};
/// let mut b = MessageBuilder::new();
/// request::set_link_mtu(&mut b, 1, 7, 1400).unwrap();
/// // A set request has the same layout as a link message:
/// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
/// let l = LinkView::parse_any(&m).unwrap();
/// assert_eq!((l.index(), l.mtu()), (7, Some(1400)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    msg_type: u16,
    hdr: IfInfoMsg,
    name: Option<&'a str>,
    mtu: Option<u32>,
    min_mtu: Option<u32>,
    max_mtu: Option<u32>,
    operstate: Option<u8>,
    linkmode: Option<u8>,
    address: Option<&'a [u8]>,
    broadcast: Option<&'a [u8]>,
    perm_address: Option<&'a [u8]>,
    master: Option<u32>,
    link: Option<u32>,
    link_netnsid: Option<i32>,
    txqlen: Option<u32>,
    qdisc: Option<&'a str>,
    group: Option<u32>,
    alias: Option<&'a str>,
    carrier: Option<u8>,
    promiscuity: Option<u32>,
    kind: Option<&'a str>,
    slave_kind: Option<&'a str>,
    info_data: Option<&'a [u8]>,
    stats64: Option<&'a [u8]>,
    af_spec: Option<&'a [u8]>,
    allmulti: Option<u32>,
    num_tx_queues: Option<u32>,
    num_rx_queues: Option<u32>,
    gso_max_size: Option<u32>,
    gso_max_segs: Option<u32>,
    gro_max_size: Option<u32>,
    tso_max_size: Option<u32>,
    tso_max_segs: Option<u32>,
    phys_port_name: Option<&'a str>,
    parent_dev_name: Option<&'a str>,
    parent_dev_bus_name: Option<&'a str>,
    phys_port_id: Option<&'a [u8]>,
    phys_switch_id: Option<&'a [u8]>,
    slave_info_data: Option<&'a [u8]>,
    prop_list: Option<&'a [u8]>,
    unknown_attrs: u32,
}

impl<'a> LinkView<'a> {
    /// Decodes an `RTM_NEWLINK` or `RTM_DELLINK` message.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        check_type(msg, RTM_NEWLINK, RTM_DELLINK)?;
        Self::parse_any(msg)
    }

    /// Decodes a message with an `ifinfomsg` header whatever its type (e.g. a request).
    pub fn parse_any(msg: &Message<'a>) -> Result<Self, WireError> {
        let (hdr, attrs) = msg.family_header::<IfInfoMsg>()?;
        let mut v = LinkView {
            msg_type: msg.ty(),
            hdr,
            name: None,
            mtu: None,
            min_mtu: None,
            max_mtu: None,
            operstate: None,
            linkmode: None,
            address: None,
            broadcast: None,
            perm_address: None,
            master: None,
            link: None,
            link_netnsid: None,
            txqlen: None,
            qdisc: None,
            group: None,
            alias: None,
            carrier: None,
            promiscuity: None,
            kind: None,
            slave_kind: None,
            info_data: None,
            stats64: None,
            af_spec: None,
            allmulti: None,
            num_tx_queues: None,
            num_rx_queues: None,
            gso_max_size: None,
            gso_max_segs: None,
            gro_max_size: None,
            tso_max_size: None,
            tso_max_segs: None,
            phys_port_name: None,
            parent_dev_name: None,
            parent_dev_bus_name: None,
            phys_port_id: None,
            phys_switch_id: None,
            slave_info_data: None,
            prop_list: None,
            unknown_attrs: 0,
        };
        for a in attrs {
            let a = a?;
            match a.ty() {
                IFLA_IFNAME => v.name = Some(a.str()?),
                IFLA_MTU => v.mtu = Some(a.u32()?),
                IFLA_MIN_MTU => v.min_mtu = Some(a.u32()?),
                IFLA_MAX_MTU => v.max_mtu = Some(a.u32()?),
                IFLA_OPERSTATE => v.operstate = Some(a.u8()?),
                IFLA_LINKMODE => v.linkmode = Some(a.u8()?),
                IFLA_ADDRESS => v.address = Some(a.payload()),
                IFLA_BROADCAST => v.broadcast = Some(a.payload()),
                IFLA_PERM_ADDRESS => v.perm_address = Some(a.payload()),
                IFLA_MASTER => v.master = Some(a.u32()?),
                IFLA_LINK => v.link = Some(a.u32()?),
                IFLA_LINK_NETNSID => v.link_netnsid = Some(a.i32()?),
                IFLA_TXQLEN => v.txqlen = Some(a.u32()?),
                IFLA_QDISC => v.qdisc = Some(a.str()?),
                IFLA_GROUP => v.group = Some(a.u32()?),
                IFLA_IFALIAS => v.alias = Some(a.str()?),
                IFLA_CARRIER => v.carrier = Some(a.u8()?),
                IFLA_PROMISCUITY => v.promiscuity = Some(a.u32()?),
                IFLA_STATS64 => v.stats64 = Some(a.payload()),
                IFLA_LINKINFO => v.parse_linkinfo(a)?,
                IFLA_AF_SPEC => v.af_spec = Some(a.payload()),
                IFLA_PROP_LIST => v.prop_list = Some(a.payload()),
                IFLA_ALLMULTI => v.allmulti = Some(a.u32()?),
                IFLA_NUM_TX_QUEUES => v.num_tx_queues = Some(a.u32()?),
                IFLA_NUM_RX_QUEUES => v.num_rx_queues = Some(a.u32()?),
                IFLA_GSO_MAX_SIZE => v.gso_max_size = Some(a.u32()?),
                IFLA_GSO_MAX_SEGS => v.gso_max_segs = Some(a.u32()?),
                IFLA_GRO_MAX_SIZE => v.gro_max_size = Some(a.u32()?),
                IFLA_TSO_MAX_SIZE => v.tso_max_size = Some(a.u32()?),
                IFLA_TSO_MAX_SEGS => v.tso_max_segs = Some(a.u32()?),
                IFLA_PHYS_PORT_NAME => v.phys_port_name = Some(a.str()?),
                IFLA_PARENT_DEV_NAME => v.parent_dev_name = Some(a.str()?),
                IFLA_PARENT_DEV_BUS_NAME => v.parent_dev_bus_name = Some(a.str()?),
                IFLA_PHYS_PORT_ID => v.phys_port_id = Some(a.payload()),
                IFLA_PHYS_SWITCH_ID => v.phys_switch_id = Some(a.payload()),
                _ => v.unknown_attrs += 1,
            }
        }
        Ok(v)
    }

    fn parse_linkinfo(&mut self, info: Attr<'a>) -> Result<(), WireError> {
        for a in info.nested() {
            let a = a?;
            match a.ty() {
                IFLA_INFO_KIND => self.kind = Some(a.str()?),
                IFLA_INFO_SLAVE_KIND => self.slave_kind = Some(a.str()?),
                IFLA_INFO_DATA => self.info_data = Some(a.payload()),
                IFLA_INFO_SLAVE_DATA => self.slave_info_data = Some(a.payload()),
                _ => {}
            }
        }
        Ok(())
    }

    /// `nlmsg_type`: `RTM_NEWLINK` or `RTM_DELLINK`.
    pub fn msg_type(&self) -> u16 {
        self.msg_type
    }
    /// The `ifinfomsg` header.
    pub fn header(&self) -> IfInfoMsg {
        self.hdr
    }
    /// The interface index.
    pub fn index(&self) -> u32 {
        self.hdr.index as u32
    }
    /// `IFF_*` flags.
    pub fn flags(&self) -> u32 {
        self.hdr.flags
    }
    /// True when `IFF_UP` is set (administratively up).
    pub fn is_up(&self) -> bool {
        self.hdr.flags & IFF_UP != 0
    }
    /// The `ARPHRD_*` device type.
    pub fn link_type(&self) -> u16 {
        self.hdr.ty
    }
    /// `IFLA_IFNAME`.
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }
    /// `IFLA_MTU`.
    pub fn mtu(&self) -> Option<u32> {
        self.mtu
    }
    /// `IFLA_MIN_MTU`.
    pub fn min_mtu(&self) -> Option<u32> {
        self.min_mtu
    }
    /// `IFLA_MAX_MTU`.
    pub fn max_mtu(&self) -> Option<u32> {
        self.max_mtu
    }
    /// `IFLA_OPERSTATE` (`IF_OPER_*`).
    pub fn operstate(&self) -> Option<u8> {
        self.operstate
    }
    /// `IFLA_LINKMODE`.
    pub fn linkmode(&self) -> Option<u8> {
        self.linkmode
    }
    /// `IFLA_ADDRESS`: the link-layer (MAC) address.
    pub fn address(&self) -> Option<&'a [u8]> {
        self.address
    }
    /// `IFLA_BROADCAST`.
    pub fn broadcast(&self) -> Option<&'a [u8]> {
        self.broadcast
    }
    /// `IFLA_PERM_ADDRESS`.
    pub fn perm_address(&self) -> Option<&'a [u8]> {
        self.perm_address
    }
    /// `IFLA_MASTER`: the index of the bridge or bond this link is enslaved to.
    pub fn master(&self) -> Option<u32> {
        self.master
    }
    /// `IFLA_LINK`: the parent or peer index (the veth peer, the VLAN's lower device).
    pub fn link(&self) -> Option<u32> {
        self.link
    }
    /// `IFLA_LINK_NETNSID`: set when [`link`](LinkView::link) lives in another namespace.
    pub fn link_netnsid(&self) -> Option<i32> {
        self.link_netnsid
    }
    /// `IFLA_TXQLEN`.
    pub fn txqlen(&self) -> Option<u32> {
        self.txqlen
    }
    /// `IFLA_QDISC`.
    pub fn qdisc(&self) -> Option<&'a str> {
        self.qdisc
    }
    /// `IFLA_GROUP`.
    pub fn group(&self) -> Option<u32> {
        self.group
    }
    /// `IFLA_IFALIAS`.
    pub fn alias(&self) -> Option<&'a str> {
        self.alias
    }
    /// `IFLA_CARRIER`.
    pub fn carrier(&self) -> Option<bool> {
        self.carrier.map(|c| c != 0)
    }
    /// `IFLA_PROMISCUITY`.
    pub fn promiscuity(&self) -> Option<u32> {
        self.promiscuity
    }
    /// `IFLA_INFO_KIND` from `IFLA_LINKINFO` (`"veth"`, `"bridge"`, …).
    pub fn kind(&self) -> Option<&'a str> {
        self.kind
    }
    /// `IFLA_INFO_SLAVE_KIND` from `IFLA_LINKINFO`.
    pub fn slave_kind(&self) -> Option<&'a str> {
        self.slave_kind
    }
    /// The raw `IFLA_INFO_DATA` attributes (kind-specific).
    pub fn info_data(&self) -> Option<&'a [u8]> {
        self.info_data
    }
    /// The decoded `IFLA_INFO_DATA` for this link's kind (`None` without a kind).
    ///
    /// ```
    /// use nlkit_wire::{Messages, MessageBuilder};
    /// use nlkit_route::{request, KindInfo, LinkKind, LinkSpec, LinkView, VlanOpts};
    /// let spec = LinkSpec::new("v10", LinkKind::Vlan(VlanOpts { id: Some(10), protocol: None })).parent(2);
    /// let mut b = MessageBuilder::new();
    /// request::add_link(&mut b, 1, &spec).unwrap();
    /// let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
    /// let l = LinkView::parse_any(&m).unwrap();
    /// assert!(matches!(l.kind_info().unwrap(), Some(KindInfo::Vlan(v)) if v.id == Some(10)));
    /// ```
    pub fn kind_info(&self) -> Result<Option<KindInfo<'a>>, WireError> {
        match self.kind {
            Some(k) => KindInfo::parse(k, self.info_data.unwrap_or(&[])).map(Some),
            None => Ok(None),
        }
    }
    /// The raw `IFLA_AF_SPEC` payload (per-family nests; for `AF_BRIDGE` link messages the
    /// bridge VLANs, see [`bridge_vlans`](crate::bridge_vlans)).
    pub fn af_spec(&self) -> Option<&'a [u8]> {
        self.af_spec
    }
    /// `IFLA_ALLMULTI`.
    pub fn allmulti(&self) -> Option<u32> {
        self.allmulti
    }
    /// `IFLA_NUM_TX_QUEUES`.
    pub fn num_tx_queues(&self) -> Option<u32> {
        self.num_tx_queues
    }
    /// `IFLA_NUM_RX_QUEUES`.
    pub fn num_rx_queues(&self) -> Option<u32> {
        self.num_rx_queues
    }
    /// `IFLA_GSO_MAX_SIZE`.
    pub fn gso_max_size(&self) -> Option<u32> {
        self.gso_max_size
    }
    /// `IFLA_GSO_MAX_SEGS`.
    pub fn gso_max_segs(&self) -> Option<u32> {
        self.gso_max_segs
    }
    /// `IFLA_GRO_MAX_SIZE`.
    pub fn gro_max_size(&self) -> Option<u32> {
        self.gro_max_size
    }
    /// `IFLA_TSO_MAX_SIZE`.
    pub fn tso_max_size(&self) -> Option<u32> {
        self.tso_max_size
    }
    /// `IFLA_TSO_MAX_SEGS`.
    pub fn tso_max_segs(&self) -> Option<u32> {
        self.tso_max_segs
    }
    /// `IFLA_PHYS_PORT_NAME`.
    pub fn phys_port_name(&self) -> Option<&'a str> {
        self.phys_port_name
    }
    /// `IFLA_PARENT_DEV_NAME`.
    pub fn parent_dev_name(&self) -> Option<&'a str> {
        self.parent_dev_name
    }
    /// `IFLA_PARENT_DEV_BUS_NAME`.
    pub fn parent_dev_bus_name(&self) -> Option<&'a str> {
        self.parent_dev_bus_name
    }
    /// `IFLA_PHYS_PORT_ID` (raw bytes).
    pub fn phys_port_id(&self) -> Option<&'a [u8]> {
        self.phys_port_id
    }
    /// `IFLA_PHYS_SWITCH_ID` (raw bytes).
    pub fn phys_switch_id(&self) -> Option<&'a [u8]> {
        self.phys_switch_id
    }
    /// The alternative names (`IFLA_ALT_IFNAME` in `IFLA_PROP_LIST`), in order; malformed
    /// entries are skipped.
    pub fn alt_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        nlkit_wire::Attrs::new(self.prop_list.unwrap_or(&[]))
            .map_while(Result::ok)
            .filter(|a| a.ty() == IFLA_ALT_IFNAME)
            .filter_map(|a| a.str().ok())
    }
    /// The raw `IFLA_INFO_SLAVE_DATA` attributes (slave-kind-specific, e.g. bridge port).
    pub fn slave_info_data(&self) -> Option<&'a [u8]> {
        self.slave_info_data
    }
    /// `IFLA_INET6_ADDR_GEN_MODE` from the `AF_INET6` nest of `IFLA_AF_SPEC`.
    pub fn inet6_addr_gen_mode(&self) -> Option<u8> {
        let spec = self.af_spec?;
        let inet6 = nlkit_wire::Attrs::new(spec).find(AF_INET6 as u16)?.ok()?;
        let mode = inet6.nested().find(IFLA_INET6_ADDR_GEN_MODE)?.ok()?;
        mode.u8().ok()
    }
    /// `IFLA_STATS64`, decoded (short or long structs accepted).
    pub fn stats64(&self) -> Option<LinkStats64> {
        self.stats64.map(LinkStats64::parse)
    }
    /// Attributes skipped because this view does not decode them.
    pub fn unknown_attrs(&self) -> u32 {
        self.unknown_attrs
    }

    /// An owned copy of the decoded fields.
    pub fn to_owned(&self) -> Link {
        Link {
            index: self.index(),
            flags: self.flags(),
            link_type: self.link_type(),
            name: self.name.map(str::to_owned),
            mtu: self.mtu,
            operstate: self.operstate,
            address: self.address.map(<[u8]>::to_vec),
            master: self.master,
            link: self.link,
            kind: self.kind.map(str::to_owned),
            stats64: self.stats64(),
        }
    }
}

/// An owned link summary, from [`LinkView::to_owned`].
///
/// ```
/// let l = nlkit_route::Link { index: 3, name: Some("veth0".into()), ..Default::default() };
/// assert_eq!(l.name.as_deref(), Some("veth0"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)]
pub struct Link {
    pub index: u32,
    pub flags: u32,
    pub link_type: u16,
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub operstate: Option<u8>,
    pub address: Option<Vec<u8>>,
    pub master: Option<u32>,
    pub link: Option<u32>,
    pub kind: Option<String>,
    pub stats64: Option<LinkStats64>,
}
