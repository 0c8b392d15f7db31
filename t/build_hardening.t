# The module is built with the hardening Debian builds nginx with
# (scripts/build.sh): immediate binding (with the toolchain's default RELRO,
# full RELRO), the stack protector and FORTIFY_SOURCE's checked calls. A
# build that loses them (nginx-dev's conf_flags alone give `-O` and nothing
# else) fails here; a sanitizer build (scripts/sanitize.sh) has its own
# flags and is skipped.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest qw(-nomodule);

my $so = PgTest::module_path();
plan skip_all => "no module built at $so" unless -f $so;

sub run_readelf (@args) {
    open(my $fh, '-|', 'readelf', @args, $so) or die "readelf: $!";
    local $/;
    my $out = <$fh>;
    close($fh);
    return $out // '';
}

my $dynamic = run_readelf('-dW');
plan skip_all => 'a sanitizer build has its own flags' if $dynamic =~ /NEEDED.*libasan/;

like($dynamic, qr/\(FLAGS\)\s+BIND_NOW/, 'immediate binding (-z now)');
like($dynamic, qr/\(FLAGS_1\)\s+Flags:.*\bNOW\b/, 'DF_1_NOW');
like(run_readelf('-lW'), qr/GNU_RELRO/, 'a RELRO segment');
my $symbols = run_readelf('--dyn-syms', '-W');
like($symbols, qr/\b__stack_chk_fail\b/, 'the stack protector is in (-fstack-protector-strong)');
like($symbols, qr/\b__(?!stack_)\w+_chk\b/, 'FORTIFY_SOURCE checked calls are in (-D_FORTIFY_SOURCE=2)');

done_testing();
