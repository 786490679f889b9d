// Creates Kafka ACLs read from stdin, one a line as 'sagaflow acls print'
// writes them:  PRINCIPAL RESOURCE_TYPE PATTERN_TYPE NAME OPERATION
// e.g.          User:payment TOPIC LITERAL orders.service.payment.pay READ
// Run by deployment/kafka/acls with the broker's jars on the classpath (Java's
// single-file source launcher; librdkafka 2.0.2 cannot create
// TRANSACTIONAL_ID ACLs). ACLs that exist already are kept.
//
// Usage: java -cp 'JARS/*' CreateAcls.java BOOTSTRAP_SERVERS CLIENT_PROPERTIES_FILE < acls

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class CreateAcls {
  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: CreateAcls BOOTSTRAP_SERVERS CLIENT_PROPERTIES_FILE < acls");
      System.exit(2);
    }
    Properties props = new Properties();
    try (FileInputStream in = new FileInputStream(args[1])) {
      props.load(in);
    }
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

    List<AclBinding> acls = new ArrayList<>();
    BufferedReader reader = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    int number = 0;
    for (String line; (line = reader.readLine()) != null; ) {
      number++;
      line = line.trim();
      if (line.isEmpty() || line.startsWith("#")) continue;
      String[] f = line.split("\\s+");
      if (f.length != 5) {
        System.err.println("CreateAcls: line " + number + ": expected 5 fields, got '" + line + "'");
        System.exit(2);
      }
      ResourcePattern pattern =
          new ResourcePattern(ResourceType.fromString(f[1]), f[3], PatternType.fromString(f[2]));
      AclOperation operation = AclOperation.fromString(f[4]);
      if (pattern.resourceType() == ResourceType.UNKNOWN || pattern.patternType() == PatternType.UNKNOWN
          || operation == AclOperation.UNKNOWN) {
        System.err.println("CreateAcls: line " + number + ": unknown resource, pattern or operation in '" + line + "'");
        System.exit(2);
      }
      acls.add(new AclBinding(pattern, new AccessControlEntry(f[0], "*", operation, AclPermissionType.ALLOW)));
    }
    try (Admin admin = Admin.create(props)) {
      admin.createAcls(acls).all().get(60, TimeUnit.SECONDS);
    }
    System.out.println("CreateAcls: " + acls.size() + " ACLs present");
  }
}
