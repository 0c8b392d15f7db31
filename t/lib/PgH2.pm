# A small HTTP/2 client (cleartext, prior knowledge) for the tests: many
# streams on one connection, stream resets, and each stream's :status.
# Requests are encoded with HPACK literals (no indexing, no Huffman); of the
# answers only :status is decoded, which nginx sends first, either as a
# static-table index or as a raw three-digit literal.
package PgH2;

use 5.036;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

use constant {
    DATA => 0, HEADERS => 1, RST_STREAM => 3, SETTINGS => 4, PING => 6, GOAWAY => 7, WINDOW_UPDATE => 8,
    CONTINUATION => 9,
    END_STREAM => 0x1, ACK => 0x1, END_HEADERS => 0x4,
};

my %STATIC_STATUS = (8 => 200, 9 => 204, 10 => 206, 11 => 304, 12 => 400, 13 => 404, 14 => 500);

sub new ($class, $port) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
        or die "h2 connect: $!";
    binmode $sock;
    my $self = bless { sock => $sock, next_id => 1, buf => '', streams => {}, goaway => 0 }, $class;
    $self->_write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . _frame(SETTINGS, 0, 0, ''));
    # a large connection window, so that answers never wait for us
    $self->_write(_frame(WINDOW_UPDATE, 0, 0, pack('N', 0x7fff0000)));
    return $self;
}

sub _frame ($type, $flags, $sid, $payload) {
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $sid & 0x7fffffff) . $payload;
}

sub _int ($v, $prefix_bits, $first = 0) {
    my $max = (1 << $prefix_bits) - 1;
    return chr($first | $v) if $v < $max;
    my $out = chr($first | $max);
    $v -= $max;
    while ($v >= 128) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v >>= 7;
    }
    return $out . chr($v);
}

sub _literal ($name, $value) {
    return "\x00" . _int(length $name, 7) . $name . _int(length $value, 7) . $value;
}

sub _write ($self, $data) {
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        die "h2 write: $!" unless defined $n;
        $off += $n;
    }
}

# Opens a stream: request(method => 'POST', path => '/x', headers => {...},
# body => '...', end => 1, reset => 0). Returns the stream id. With end => 0 the request
# body is left open (more with data(), or a reset).
sub request ($self, %o) {
    my $sid = $self->{next_id};
    $self->{next_id} += 2;
    my $body = $o{body};
    my $end = $o{end} // 1;
    my $block = _literal(':method', $o{method} // 'GET') . _literal(':scheme', 'http')
        . _literal(':path', $o{path} // '/') . _literal(':authority', 'localhost');
    my %h = %{ $o{headers} // {} };
    $h{'content-length'} //= length $body if defined $body && $end;
    $block .= _literal(lc $_, $h{$_}) for sort keys %h;
    my $headers_end = (!defined $body && $end) ? END_STREAM : 0;
    my $out = _frame(HEADERS, END_HEADERS | $headers_end, $sid, $block);
    $out .= _frame(DATA, $end ? END_STREAM : 0, $sid, $body) if defined $body;
    # reset => 1: the stream's RST_STREAM in the same write (nginx reads both
    # in one pass)
    $out .= _frame(RST_STREAM, 0, $sid, pack('N', 8)) if $o{reset};
    $self->_write($out);
    $self->{streams}{$sid} = { status => undef, done => 0, reset => $o{reset} };
    return $sid;
}

sub data ($self, $sid, $bytes, $end = 0) {
    $self->_write(_frame(DATA, $end ? END_STREAM : 0, $sid, $bytes));
}

# RST_STREAM with CANCEL (8)
sub reset ($self, $sid) {
    $self->_write(_frame(RST_STREAM, 0, $sid, pack('N', 8)));
    $self->{streams}{$sid}{reset} = 1;
}

sub _status_of ($block) {
    my $b = ord substr($block, 0, 1);
    return $STATIC_STATUS{ $b & 0x7f } if $b & 0x80;
    # literal with incremental indexing, name index 8 (:status), raw value
    if ($b == 0x48 && (ord(substr($block, 1, 1)) & 0x80) == 0) {
        my $len = ord(substr($block, 1, 1));
        return 0 + substr($block, 2, $len);
    }
    return undef;
}

# Reads frames until every stream in @sids has ended (or was reset), or the
# timeout. Returns { sid => status } (undef: no answer).
sub wait_for ($self, $timeout, @sids) {
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($self->{sock});
    my $pending = sub { grep { !$self->{streams}{$_}{done} && !$self->{streams}{$_}{reset} } @sids };
    while ($pending->() && !$self->{goaway}) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread($self->{sock}, my $chunk, 65536);
        last unless $n;
        $self->{buf} .= $chunk;
        while (length $self->{buf} >= 9) {
            my ($l1, $l2, $type, $flags, $sid) = unpack('CnCCN', $self->{buf});
            my $len = ($l1 << 16) | $l2;
            last if length $self->{buf} < 9 + $len;
            my $payload = substr($self->{buf}, 9, $len);
            substr($self->{buf}, 0, 9 + $len) = '';
            $sid &= 0x7fffffff;
            my $st = $self->{streams}{$sid};
            if ($type == SETTINGS && !($flags & ACK)) {
                $self->_write(_frame(SETTINGS, ACK, 0, ''));
            } elsif ($type == PING && !($flags & ACK)) {
                $self->_write(_frame(PING, ACK, 0, $payload));
            } elsif ($type == GOAWAY) {
                $self->{goaway} = 1;
            } elsif ($type == HEADERS && $st) {
                $st->{status} //= _status_of($payload);
                $st->{done} = 1 if $flags & END_STREAM;
            } elsif ($type == DATA && $st) {
                $st->{body} .= $payload;
                $st->{done} = 1 if $flags & END_STREAM;
                # give the stream its window back
                $self->_write(_frame(WINDOW_UPDATE, 0, $sid, pack('N', $len))) if $len && !$st->{done};
            } elsif ($type == RST_STREAM && $st) {
                $st->{done} = 1;
                $st->{rst} = unpack('N', $payload);
            }
        }
    }
    return { map { $_ => $self->{streams}{$_}{status} } @sids };
}

sub close ($self) {
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

1;
