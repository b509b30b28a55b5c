// scripts/lib/KafkaProbe.java — readiness probe for the test broker, used by scripts/kafka.sh.
//
// Usage: java -cp <probe-dir>:<kafka-libs>/* KafkaProbe ready|topics <bootstrap> <seconds>
//
// Polls with the Kafka admin client until the broker answers a DescribeCluster (metadata with
// at least one broker) and a ListTopics, or the deadline passes. `ready` prints the cluster id
// and broker endpoints; `topics` prints every topic name, internal ones included. Exit code 0
// on success, 1 when the deadline passed.

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.Node;

public final class KafkaProbe {
    public static void main(String[] args) throws InterruptedException {
        if (args.length != 3 || !(args[0].equals("ready") || args[0].equals("topics"))) {
            System.err.println("usage: KafkaProbe ready|topics <bootstrap> <seconds>");
            System.exit(2);
        }
        String mode = args[0];
        String bootstrap = args[1];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "agora-kafka-probe");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "100");

        Admin admin = Admin.create(props);
        Exception last = null;
        int code = 1;
        try {
            while (System.nanoTime() < deadline) {
                try {
                    DescribeClusterResult cluster = admin.describeCluster();
                    Collection<Node> nodes = cluster.nodes().get(5, TimeUnit.SECONDS);
                    String clusterId = cluster.clusterId().get(5, TimeUnit.SECONDS);
                    if (nodes.isEmpty()) {
                        throw new IllegalStateException("metadata lists no brokers yet");
                    }
                    Set<String> topics = admin.listTopics(new ListTopicsOptions().listInternal(true))
                            .names().get(5, TimeUnit.SECONDS);
                    if (mode.equals("topics")) {
                        for (String topic : new TreeSet<>(topics)) {
                            System.out.println(topic);
                        }
                    } else {
                        List<String> endpoints = new ArrayList<>();
                        for (Node node : nodes) {
                            endpoints.add(node.id() + "@" + node.host() + ":" + node.port());
                        }
                        System.out.println("cluster " + clusterId + ", brokers " + endpoints
                                + ", " + topics.size() + " topics");
                    }
                    code = 0;
                    break;
                } catch (Exception e) {
                    last = e;
                    Thread.sleep(250);
                }
            }
            if (code != 0) {
                System.err.println("Kafka at " + bootstrap + " not ready: " + last);
            }
        } finally {
            admin.close(Duration.ofSeconds(2));
        }
        System.exit(code);
    }
}
